"""Fine-tune CLIP on a processed catalogue: the loop, early stopping, checkpoints, resume, history."""

from __future__ import annotations

import json
import math
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from stylesearch.common.files import atomic_write_text
from stylesearch.config import TrainConfig, to_dict
from stylesearch.data.prepare import ProcessedCatalog
from stylesearch.errors import StylesearchError
from stylesearch.model.checkpoint import STATE_FILE, check_resumable, load_training_state, save_checkpoint
from stylesearch.model.clip import LoadedModel, load_model
from stylesearch.model.preprocess import ClipPreprocess
from stylesearch.model.presets import recipe_warning
from stylesearch.train import distributed
from stylesearch.train.distributed import gather, gather_with_grad, shard, shard_sizes
from stylesearch.train.history import write_history
from stylesearch.train.losses import (
    LOSSES,
    MAX_LOGIT_SCALE,
    SIGMOID_BIAS_INIT,
    contrastive_loss,
    lr_at,
    same_item_mask,
    sigmoid_loss,
)
from stylesearch.train.pairs import PairCollator, ProductPairs, train_transform
from stylesearch.train.pixelcache import cached_pixels
from stylesearch.train.sampler import plan_batches
from stylesearch.train.textviews import merge_equal_texts, training_texts
from stylesearch.train.towers import PairEncoder, dense_grads, sparse_token_grads
from stylesearch.train.validation import ValidationSet


@dataclass
class TrainResult:
    out_dir: Path
    best_metric: float
    steps: int
    epochs_done: int
    stopped: str  # "epochs", "early stop", "time budget", "interrupted"
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    resumed: str | None = None  # with --resume: where it picked up, or that there was nothing to pick up


class StopRequest:
    """The first Ctrl-C asks the loop to stop at the next step boundary; a second one interrupts at once."""
    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("stopping after this step and saving last/ (Ctrl-C again to stop at once)")

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def freeze_layers(loaded: LoadedModel, vision: int, text: int) -> None:
    """Freeze the embeddings and first N encoder layers of each tower (cheaper, forgets less)."""
    model = loaded.model
    for tower, n in ((model.vision_model, vision), (model.text_model, text)):
        if n <= 0:
            continue
        for p in tower.embeddings.parameters():
            p.requires_grad = False
        for layer in tower.encoder.layers[:n]:
            for p in layer.parameters():
                p.requires_grad = False


def global_loss(image: torch.Tensor, text: torch.Tensor, groups: torch.Tensor, logit_scale: torch.Tensor,
                sizes: list[int], text_keys: torch.Tensor | None = None,
                logit_bias: torch.Tensor | None = None) -> torch.Tensor:
    """The contrastive loss over the global batch, from this rank's rows (`sizes`: rows per rank).

    Every rank's embeddings are gathered with gradients, so each row meets every negative in the
    global batch and duplicates are positives across ranks, exactly as in one process.

    `text` may hold several views stacked view-major ((views x rows), see `textviews.ViewCollator`):
    the loss is then the mean of one loss per view. `text_keys` ((views, rows)) makes rows whose
    view text is the same positives of each other, across ranks too. With `logit_bias` the loss is
    SigLIP's sigmoid loss, else CLIP's softmax.
    """
    rows = len(image)
    views = len(text) // max(1, rows)
    image, groups = gather_with_grad(image, sizes), gather(groups, sizes)
    losses = []
    for v in range(views):
        same = groups
        if text_keys is not None:
            keys = gather(text_keys[v], sizes).tolist()
            same = torch.tensor(merge_equal_texts(keys, groups.tolist()), device=groups.device)
        view = gather_with_grad(text[v * rows:(v + 1) * rows], sizes)
        mask = same_item_mask(same)
        losses.append(contrastive_loss(image, view, logit_scale, mask) if logit_bias is None
                      else sigmoid_loss(image, view, logit_scale, logit_bias, mask))
    return losses[0] if views == 1 else torch.stack(losses).mean()


def train(catalog: ProcessedCatalog, cfg: TrainConfig, out_dir: Path, *, resume: bool = False,
          loaded: LoadedModel | None = None, clock: Callable[[], float] = time.monotonic) -> TrainResult:
    """Fine-tune `cfg.base_model` on the train split; keep `best` (by val recall@10) and `last`.

    `clock` (seconds) measures the `max_minutes` budget that the learning-rate schedule anneals over.
    """
    out_dir = Path(out_dir)
    if cfg.loss not in LOSSES:  # before any work: a typo should not cost a pixel cache build
        raise StylesearchError(f"unknown loss {cfg.loss!r}; use one of {', '.join(LOSSES)}")
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    where = distributed.setup()  # one process, or this rank of a torchrun job
    device, main, world = where.device, where.is_main, where.world
    state: dict[str, Any] | None = None
    if resume and (out_dir / "last" / STATE_FILE).is_file():  # every rank resumes from the same `last`
        check_resumable(cfg, out_dir / "last")
        loaded = load_model(str(out_dir / "last"))
        state = load_training_state(out_dir / "last")
    loaded = loaded or load_model(cfg.base_model, seed=cfg.seed)
    model = loaded.model.to(device)
    model.set_attn_implementation(training_attention(device))
    warning = recipe_warning(cfg)
    if warning and main:
        tqdm.write(f"warning: {warning}")
    freeze_layers(loaded, cfg.freeze_vision_layers, cfg.freeze_text_layers)

    train_frame, val_frame = catalog.split("train"), catalog.split("val")
    if cfg.val_max_items and len(val_frame) > cfg.val_max_items:
        val_frame = val_frame.sample(cfg.val_max_items, random_state=cfg.seed).reset_index(drop=True)
    validation = ValidationSet.build(loaded, val_frame) if main else None
    size = int(model.config.vision_config.image_size)
    collate = PairCollator(loaded.processor.tokenizer, int(model.config.text_config.max_position_embeddings))
    pixels = None
    if cfg.pixel_cache:
        preprocess = ClipPreprocess.from_processor(loaded.processor.image_processor)
        pixels = cached_pixels(train_frame["image"].tolist(), train_frame["id"].astype(str).tolist(), preprocess,
                               catalog_sha256=str(catalog.manifest.get("catalog_sha256", "")),
                               folders=[catalog.path, out_dir], label="train", progress=main)
    transform = train_transform(size, hue_jitter=cfg.hue_jitter, augment=cfg.augment)
    dataset, collate = training_texts(train_frame, transform, collate, cfg.text_views, pixels=pixels,
                                     title_share=cfg.title_share)
    steps_per_epoch = len(plan_batches(cfg.sampler, train_frame, cfg.batch_size, cfg.seed, 0, world))
    total_steps = max(1, steps_per_epoch * cfg.epochs)

    encoder = PairEncoder(model, cfg.text_buckets, SIGMOID_BIAS_INIT if cfg.loss == "sigmoid" else None).to(device)
    params = [p for p in encoder.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases, norms and the temperature: no weight decay
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6,
                                  fused=fused_adam(device))
    pair: torch.nn.Module = encoder
    if world > 1:  # broadcasts rank 0's weights, then averages gradients across ranks in backward
        pair = torch.nn.parallel.DistributedDataParallel(pair, device_ids=[device.index] if device.index is not None
                                                         else None)
    use_amp = cfg.amp and device.type == "cuda"
    # One process on a CPU: the token table's gradient stays sparse until the optimizer (towers.py). Under DDP
    # gradients stay dense, as every backend's all-reduce wants.
    sparse_tokens = sparse_token_grads(model, device.type == "cpu" and world == 1)
    use_bf16 = cfg.bf16 and device.type == "cpu"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    budget = cfg.max_minutes * 60 if cfg.max_minutes is not None else None

    step, start_epoch, skip, best, bad_epochs = 0, 0, 0, -math.inf, 0
    history: dict[str, list[dict[str, Any]]] = {"steps": [], "epochs": []}
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, start_epoch, skip = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
        best, bad_epochs = float(state["best"]), int(state["bad_epochs"])
        history = json.loads(state["history"])
        if encoder.logit_bias is not None and "logit_bias" in state:
            with torch.no_grad():
                encoder.logit_bias.fill_(float(state["logit_bias"]))
    # The budget and the schedule count the time of earlier attempts too: a resumed run continues its curve.
    # `elapsed` is rank 0's clock, broadcast every step, so every rank steps with the same learning rate.
    elapsed = float(state.get("elapsed", 0.0)) if state is not None else 0.0
    started = clock() - elapsed
    resumed = resume_message(out_dir, state, steps_per_epoch) if resume else None
    if resumed and main:
        tqdm.write(resumed)

    def snapshot(epoch: int, batch_in_epoch: int) -> dict[str, Any]:
        out = {"optimizer": optimizer.state_dict(), "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
               "best": best, "bad_epochs": bad_epochs, "history": json.dumps(history), "elapsed": clock() - started}
        if encoder.logit_bias is not None:
            out["logit_bias"] = float(encoder.logit_bias.detach())
        return out

    def save_last(epoch: int, batch_in_epoch: int) -> None:
        if main:  # rank 0 alone writes; every rank holds the same weights
            save_checkpoint(loaded, out_dir / "last", cfg, info={"step": step, "epoch": epoch},
                            state=snapshot(epoch, batch_in_epoch))

    stopped = "epochs"
    epoch, pos = start_epoch, skip
    # The last consistent place to resume from: moved only once a step or an epoch's bookkeeping is complete.
    resume_at = {"epoch": epoch, "pos": pos, "epochs_logged": len(history["epochs"]), "best": best,
                 "bad_epochs": bad_epochs}
    stop = StopRequest().__enter__()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            batches = plan_batches(cfg.sampler, train_frame, cfg.batch_size, cfg.seed, epoch, world,
                                   loaded=loaded, cache_dir=out_dir)
            first = skip if epoch == start_epoch else 0
            model.train()
            pos = first
            bar = tqdm(total=len(batches), initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
                       leave=False, disable=not main)
            tick = time.monotonic()  # samples/s counts decoding and augmenting the batch too, not saving
            for b, batch in iter_batches(dataset, collate, batches, first, cfg, epoch, where.rank, world):
                # 1. schedule: over the epochs, or over the time budget when that ends first
                lr = lr_at(step, base_lr=cfg.lr, warmup=cfg.warmup_steps, total=total_steps, elapsed=elapsed,
                           budget=budget)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                # 2. forward: this rank's share of the global batch (all of it in one process)
                with torch.autocast(device.type, dtype=torch.bfloat16 if use_bf16 else None,
                                    enabled=use_amp or use_bf16):
                    image, text = pair(batch["pixel_values"].to(device), batch["input_ids"].to(device),
                                       batch["attention_mask"].to(device))
                # 3. loss over the global batch: rows sharing a title or image are positives, not negatives
                keys = batch.get("text_keys")
                loss = global_loss(image, text, batch["groups"].to(device), model.logit_scale,
                                   shard_sizes(len(batches[b]), world), None if keys is None else keys.to(device),
                                   encoder.logit_bias)
                # 4. backward
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                dense_grads(params)
                # 5. clip
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                # 6. step
                scaler.step(optimizer)
                scaler.update()
                # 7. clamp the temperature as CLIP does
                with torch.no_grad():
                    model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
                # 8. log
                step += 1
                rate = len(batches[b]) / max(1e-9, time.monotonic() - tick)
                history["steps"].append({"step": step, "epoch": epoch, "loss": loss.item(), "lr": lr,
                                         "samples_per_s": rate})
                pos = b + 1
                resume_at.update(epoch=epoch, pos=pos)
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", sps=f"{rate:.0f}")
                if cfg.save_every_steps and step % cfg.save_every_steps == 0:
                    save_last(epoch, pos)
                # Rank 0's Ctrl-C and rank 0's clock decide for every rank, in one exchange per step.
                now = clock() - started
                interrupted, out_of_time, elapsed = distributed.broadcast(
                    (stop.requested, budget is not None and now > budget, now))
                if interrupted:
                    raise KeyboardInterrupt
                if out_of_time:
                    stopped = "time budget"
                    break
                tick = time.monotonic()
            bar.close()
            # 9. evaluate on validation (rank 0; every rank gets its numbers so all stop together), 10. checkpoint
            metrics = distributed.broadcast(validation.metrics(loaded, cfg.batch_size) if main else None)
            history["epochs"].append({"epoch": epoch + 1, "step": step, **metrics})
            if main:
                tqdm.write(f"epoch {epoch + 1}: val loss {metrics['val_loss']:.4f}  R@1 {metrics['R@1']:.3f}  "
                           f"R@10 {metrics['R@10']:.3f}")
            if metrics["R@10"] > best:
                best, bad_epochs = metrics["R@10"], 0
                if main:
                    save_checkpoint(loaded, out_dir / "best", cfg, info={"step": step, "epoch": epoch + 1, **metrics})
            else:
                bad_epochs += 1
            resume_at = {"epoch": epoch + 1, "pos": 0, "epochs_logged": len(history["epochs"]), "best": best,
                         "bad_epochs": bad_epochs}
            save_last(epoch + 1, 0)
            if main:
                write_history(history, out_dir)
            if stopped == "time budget":
                break
            if distributed.broadcast(stop.requested):  # Ctrl-C during validation: last/ is already saved
                stopped = "interrupted"
                break
            if bad_epochs >= cfg.patience:
                stopped = "early stop"
                break
    except KeyboardInterrupt:
        # Ctrl-C: keep what was learned in a resumable `last` at the last consistent point, then return.
        best, bad_epochs = resume_at["best"], resume_at["bad_epochs"]
        del history["epochs"][resume_at["epochs_logged"]:]
        save_last(resume_at["epoch"], resume_at["pos"])
        if main:
            write_history(history, out_dir)
        stopped = "interrupted"
    finally:
        stop.__exit__()
        if sparse_tokens is not None:  # the caller's model goes back to ordinary dense gradients
            sparse_tokens.sparse = False
    if main:
        atomic_write_text(out_dir / "train_config.json", json.dumps(to_dict(cfg), indent=2))
    distributed.barrier()  # no rank returns before rank 0 has written everything
    distributed.cleanup(where)
    return TrainResult(out_dir=out_dir, best_metric=best, steps=step, epochs_done=len(history["epochs"]),
                       stopped=stopped, history=history, resumed=resumed)


def training_attention(device: torch.device) -> str:
    """Plain softmax attention on a CPU: for CLIP's 10-50 tokens, the fused kernel's backward cost a third of a step."""
    return "eager" if device.type == "cpu" else "sdpa"


def fused_adam(device: torch.device) -> bool:
    """One fused kernel for the whole update: on a CPU the per-tensor loop took a tenth of each step."""
    return device.type in ("cpu", "cuda")


def iter_batches(dataset: ProductPairs, collate: PairCollator, batches: list[list[int]], first: int,
                 cfg: TrainConfig, epoch: int, rank: int = 0,
                 world: int = 1) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """Yield (batch number, this rank's share of the batch) from `first` on; decode in worker processes when asked."""
    if cfg.num_workers == 0:
        for b in range(first, len(batches)):
            items = []
            for k in shard(list(range(len(batches[b]))), rank, world):
                # Augmentation draws from torch's RNG: a seed per (epoch, batch, position) replays it exactly
                # on --resume, and gives each rank the pixels one process would have drawn for its rows.
                # The CPU generator itself: torch.manual_seed's wrapper costs half a millisecond a call.
                torch.default_generator.manual_seed(augmentation_seed(cfg.seed, epoch, b, k))
                items.append(dataset[batches[b][k]])
            yield b, collate(items)
        return
    local = [shard(batch, rank, world) for batch in batches[first:]]
    loader = DataLoader(dataset, batch_sampler=local, collate_fn=collate, num_workers=cfg.num_workers)
    yield from enumerate(loader, start=first)


def resume_message(out_dir: Path, state: dict[str, Any] | None, steps_per_epoch: int) -> str:
    """What `--resume` found: the place it picks up from, or that it starts fresh."""
    if state is None:
        return f"nothing to resume in {out_dir / 'last'} (no {STATE_FILE}); starting fresh"
    best = float(state["best"])
    best_text = f"{best:.3f}" if math.isfinite(best) else "none yet"
    return (f"resuming from {out_dir / 'last'}: epoch {int(state['epoch']) + 1}, batch {int(state['batch_in_epoch'])}"
            f" of {steps_per_epoch}, step {int(state['step'])}, best val R@10 {best_text}, "
            f"{float(state.get('elapsed', 0.0)) / 60:.1f} min trained so far")


def augmentation_seed(seed: int, epoch: int, batch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, batch, position]).generate_state(1)[0])
