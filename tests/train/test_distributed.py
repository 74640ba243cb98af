"""Data-parallel training on CPU: 2 gloo processes started by torch.multiprocessing, as torchrun would."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from stylesearch.config import TrainConfig
from stylesearch.model.clip import tiny_model
from stylesearch.train import distributed
from stylesearch.train.loop import global_loss
from stylesearch.train.pairs import PairCollator
from stylesearch.train.towers import PairEncoder

WORLD = 2
# Rows 3 and 4 are the same product and land on different ranks (rank 0 gets rows 0-3, rank 1 rows 4-6):
# the duplicate-aware targets must still treat them as positives. 7 rows also makes the shards uneven.
GROUPS = [0, 1, 2, 3, 3, 4, 5]
TEXTS = ["navy blue shirt", "red dress", "black watch", "white sneakers", "white sneakers", "green cap", "grey bag"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def join_as_rank(rank: int, port: int) -> None:
    """What torchrun does for each process: the environment `distributed.setup` reads."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)  # two ranks on a small CPU: no oversubscription


# A second text view (views-sum): rows 1 and 5 are different products with the same words, on different
# ranks; their text keys must make them positives of each other as in one process.
VIEW2 = ["blue shirts", "red dresses", "black watches", "white shoes", "white shoes", "red dresses", "grey bags"]


def global_batch(views: int = 1) -> dict[str, torch.Tensor]:
    from stylesearch.train.textviews import ViewCollator

    loaded = tiny_model(seed=0)
    pixels = torch.randn(len(TEXTS), 3, 64, 64, generator=torch.Generator().manual_seed(0))
    if views == 1:
        tokens = loaded.processor.tokenizer(TEXTS, padding=True, return_tensors="pt")
        return {"pixel_values": pixels, "input_ids": tokens["input_ids"],
                "attention_mask": tokens["attention_mask"], "groups": torch.tensor(GROUPS)}
    collate = ViewCollator(PairCollator(loaded.processor.tokenizer, 77))
    return collate([(p, (a, b), g) for p, a, b, g in zip(pixels, TEXTS, VIEW2, GROUPS, strict=True)])


def one_step(pair: torch.nn.Module, model: torch.nn.Module, batch: dict[str, torch.Tensor],
             rows: list[int], sizes: list[int]) -> dict[str, torch.Tensor]:
    """Forward this process's rows, the global loss, backward: the loss and every parameter's gradient."""
    views = len(batch["input_ids"]) // len(batch["pixel_values"])
    text_rows = [v * len(TEXTS) + r for v in range(views) for r in rows]
    image, text = pair(batch["pixel_values"][rows], batch["input_ids"][text_rows],
                       batch["attention_mask"][text_rows])
    keys = batch["text_keys"][:, rows] if "text_keys" in batch else None
    loss = global_loss(image, text, batch["groups"][rows], model.logit_scale, sizes, keys)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return {"loss": loss.detach(), **{f"grad/{k}": v for k, v in grads.items()}}


def _step_worker(rank: int, port: int, out: str, views: int) -> None:
    join_as_rank(rank, port)
    where = distributed.setup()
    model = tiny_model(seed=0).model.train()
    pair = torch.nn.parallel.DistributedDataParallel(PairEncoder(model))
    rows = distributed.shard(list(range(len(TEXTS))), rank, WORLD)
    result = one_step(pair, model, global_batch(views), rows, distributed.shard_sizes(len(TEXTS), WORLD))
    torch.save(result, Path(out) / f"rank{rank}.pt")
    distributed.cleanup(where)


@pytest.mark.parametrize("views", [1, 2], ids=["one caption", "views-sum with equal texts across ranks"])
def test_two_process_step_equals_one_process_step_on_the_global_batch(tmp_path, views):
    model = tiny_model(seed=0).model.train()
    single = one_step(PairEncoder(model), model, global_batch(views), list(range(len(TEXTS))), [len(TEXTS)])

    mp.spawn(_step_worker, args=(free_port(), str(tmp_path), views), nprocs=WORLD, join=True)

    for rank in range(WORLD):
        ranked = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert ranked.keys() == single.keys()
        assert len([k for k in single if k.startswith("grad/")]) > 10
        for name, expected in single.items():
            # same loss on every rank; DDP's average of the ranks' gradients is the one-process gradient
            torch.testing.assert_close(ranked[name], expected, rtol=1e-4, atol=1e-6, msg=f"rank {rank}: {name}")


def test_loss_over_one_shard_alone_differs_from_the_global_loss():
    """Guards the test above: without the gather a rank would see only its own negatives."""
    batch, model = global_batch(), tiny_model(seed=0).model
    pair = PairEncoder(model)
    with torch.no_grad():
        whole = one_pass_loss(pair, model, batch, list(range(len(TEXTS))))
        half = one_pass_loss(pair, model, batch, distributed.shard(list(range(len(TEXTS))), 0, WORLD))
    assert abs(whole - half) > 1e-3


def one_pass_loss(pair, model, batch, rows) -> float:
    image, text = pair(batch["pixel_values"][rows], batch["input_ids"][rows], batch["attention_mask"][rows])
    return float(global_loss(image, text, batch["groups"][rows], model.logit_scale, [len(rows)]))


def test_shards_cover_every_global_batch_in_order():
    for n in (2, 7, 16, 33):
        batch = list(range(100, 100 + n))
        parts = [distributed.shard(batch, r, 3 if n >= 3 else 2) for r in range(3 if n >= 3 else 2)]
        assert sum(parts, []) == batch
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


SHORT = TrainConfig(base_model="tiny", lr=1e-3, weight_decay=0.1, batch_size=16, epochs=1, warmup_steps=2,
                    patience=5, save_every_steps=0)


def _train_worker(rank: int, port: int, catalog_dir: str, out: str, options: dict | None = None) -> None:
    join_as_rank(rank, port)
    import stylesearch.train.loop as train_module
    import stylesearch.train.sampler as sampler_module
    from stylesearch.data.prepare import load_processed

    real_plan, real_mine, real_embed = train_module.plan_batches, sampler_module.mine_neighbours, \
        sampler_module.image_vectors

    def recording_plan(*args, **kw):  # the batches this rank trained on
        batches = real_plan(*args, **kw)
        if kw.get("loaded") is not None:
            with open(Path(out) / f"batches-rank{rank}.jsonl", "a") as fh:
                fh.write(json.dumps(batches) + "\n")
        return batches

    def recording_mine(*args, **kw):  # the nearest-neighbour search itself
        (Path(out) / f"mined-by-rank{rank}").touch()
        return real_mine(*args, **kw)

    def recording_embed(loaded, frame, rows):  # which products this rank embedded for mining
        with open(Path(out) / f"embedded-rank{rank}.json", "a") as fh:
            fh.write(json.dumps({"rows": list(rows), "of": len(frame)}) + "\n")
        return real_embed(loaded, frame, rows)

    train_module.plan_batches, sampler_module.mine_neighbours = recording_plan, recording_mine
    sampler_module.image_vectors = recording_embed

    real_save = train_module.save_checkpoint

    def recording_save(loaded, path, cfg, **kw):  # which rank wrote which checkpoint, in order
        with open(Path(out) / f"saves-rank{rank}.txt", "a") as fh:
            fh.write(Path(path).name + "\n")
        real_save(loaded, path, cfg, **kw)

    train_module.save_checkpoint = recording_save
    result = train_module.train(load_processed(Path(catalog_dir)), replace(SHORT, **(options or {})), Path(out) / "run")
    (Path(out) / f"result-rank{rank}.json").write_text(json.dumps({"steps": result.steps, "stopped": result.stopped,
                                                                   "epochs": result.epochs_done}))


def test_two_process_training_saves_one_checkpoint_from_rank_0(processed_dir, tmp_path):
    mp.spawn(_train_worker, args=(free_port(), str(processed_dir), str(tmp_path)), nprocs=WORLD, join=True)

    results = [json.loads((tmp_path / f"result-rank{r}.json").read_text()) for r in range(WORLD)]
    assert results[0] == results[1]  # same steps and the same stop on every rank
    assert results[0]["stopped"] == "epochs" and results[0]["epochs"] == 1
    from stylesearch.data.prepare import load_processed
    from stylesearch.train.sampler import epoch_batches

    n_train = len(load_processed(processed_dir).split("train"))
    assert results[0]["steps"] == len(epoch_batches(n_train, SHORT.batch_size, SHORT.seed, 0, WORLD)) > 0

    assert (tmp_path / "saves-rank0.txt").read_text().split() == ["best", "last"]
    assert not (tmp_path / "saves-rank1.txt").exists()
    run = tmp_path / "run"
    history = json.loads((run / "history.json").read_text())
    assert [s["step"] for s in history["steps"]] == list(range(1, results[0]["steps"] + 1))
    assert sorted(p.name for p in run.iterdir()) == ["best", "history.json", "history.png", "last",
                                                      "train_config.json"]
    state = torch.load(run / "last" / "training_state.pt", weights_only=True)
    assert state["step"] == results[0]["steps"]


def test_two_process_hard_negatives_split_the_embedding_mine_once_and_plan_the_same_batches(processed_dir, tmp_path):
    options = {"sampler": "hard", "text_views": "views-sum"}
    mp.spawn(_train_worker, args=(free_port(), str(processed_dir), str(tmp_path), options), nprocs=WORLD, join=True)

    results = [json.loads((tmp_path / f"result-rank{r}.json").read_text()) for r in range(WORLD)]
    assert results[0] == results[1] and results[0]["steps"] > 0
    planned = [(tmp_path / f"batches-rank{r}.jsonl").read_text() for r in range(WORLD)]
    assert planned[0] == planned[1] and planned[0].strip()
    assert (tmp_path / "mined-by-rank0").exists() and not (tmp_path / "mined-by-rank1").exists()
    assert [p.name for p in (tmp_path / "run" / "mined").iterdir()] == ["epoch-0.npy"]
    shares = [json.loads((tmp_path / f"embedded-rank{r}.json").read_text()) for r in range(WORLD)]
    assert shares[0]["rows"] + shares[1]["rows"] == list(range(shares[0]["of"]))  # each product once, split
    assert abs(len(shares[0]["rows"]) - len(shares[1]["rows"])) <= 1


def _resume_worker(rank: int, port: int, catalog_dir: str, out: str) -> None:
    join_as_rank(rank, port)
    from stylesearch.data.prepare import load_processed
    from stylesearch.train.loop import train

    result = train(load_processed(Path(catalog_dir)), replace(SHORT, epochs=2), Path(out) / "run", resume=True)
    (Path(out) / f"resumed-rank{rank}.json").write_text(json.dumps({"steps": result.steps,
                                                                    "epochs": result.epochs_done}))


@pytest.mark.slow
def test_two_process_resume_continues_from_last(processed_dir, tmp_path):
    mp.spawn(_train_worker, args=(free_port(), str(processed_dir), str(tmp_path)), nprocs=WORLD, join=True)
    first = json.loads((tmp_path / "result-rank0.json").read_text())["steps"]
    mp.spawn(_resume_worker, args=(free_port(), str(processed_dir), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        resumed = json.loads((tmp_path / f"resumed-rank{rank}.json").read_text())
        assert resumed == {"steps": 2 * first, "epochs": 2}
