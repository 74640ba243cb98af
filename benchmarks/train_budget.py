"""Side by side on the same wall-clock budget: a plain from-scratch CLIP recipe against stylesearch's preset.

    OMP_NUM_THREADS=1 python benchmarks/train_budget.py --minutes 25 --work /tmp/budget

Each arm is its own process pinned to its own core (`taskset -c N`, one torch thread), started at
the same moment, so both get the same CPU for the same minutes. Both are then scored the same way
on the prepared catalogue's test split, products never seen in training:

- title R@10 and MRR: each distinct title queries the whole test gallery; every product with that
  title is relevant (the protocol of `stylesearch evaluate`);
- articleType P@1: each type name queries the gallery; is the first hit of that type;
- in-batch accuracy@32: image -> its own title among 32 consecutive test products (both directions
  averaged), the figure the seed description reports as "~93%".

The plain arm is written here the way a newcomer would write it, independent of stylesearch's
training code: a 4-layer, 256-wide CLIPModel (patch 8 at 64 px, 32 text tokens), images padded to a
white square and resized with PIL on every step, a random flip, titles as captions (products sharing
a title are positives), batch 128, AdamW lr 5e-4, weight decay 0.1, 100 warmup steps and cosine
decay to zero over the wall-clock budget.

Extra arms explore the preset's neighbourhood: `--arms small,small:lr=1e-3,small:hidden=192`
(`name:key=value,...` overrides TrainConfig fields or TinyPreset shape fields). The table goes to
stdout and to WORK/results.md; each arm's figures to WORK/<arm>/score.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-product-images-small" / "dev.parquet"


# --- scoring (the same for every arm) ------------------------------------------------------------

def score(encode_images, encode_texts, frame) -> dict[str, float]:
    """Title R@k / MRR, articleType P@1 and in-batch accuracy@32 of one model on one table."""
    from stylesearch.data.prepare import normalise_title
    from stylesearch.evaluate.metrics import in_batch_accuracy, precision_at_k, recall_at_k

    image = encode_images(frame["image"].tolist())
    titles = frame["title"].astype(str).tolist()
    keys = np.array([normalise_title(t) for t in titles])
    unique, first = np.unique(keys, return_index=True)
    queries = encode_texts([titles[i] for i in first])
    t2i = recall_at_k(queries @ image.T, unique[:, None] == keys[None, :], (1, 5, 10))
    types = frame["articleType"].astype(str).to_numpy()
    names = sorted(set(types))
    p1 = precision_at_k(encode_texts(names) @ image.T, np.array(names)[:, None] == types[None, :], (1,))["P@1"]
    groups = np.unique(keys, return_inverse=True)[1]
    acc = in_batch_accuracy(image, encode_texts(titles), groups, 32)
    return {"title R@1": t2i["R@1"], "title R@5": t2i["R@5"], "title R@10": t2i["R@10"], "MRR": t2i["MRR"],
            "articleType P@1": p1, "in-batch acc@32": float((acc["acc_i2t"] + acc["acc_t2i"]) / 2),
            "test products": len(frame), "title queries": len(unique)}


# --- the plain arm ---------------------------------------------------------------------------------

PLAIN_SHAPE = {"hidden": 256, "layers": 4, "heads": 4, "mlp": 1024, "projection": 256, "image": 64, "patch": 8,
               "tokens": 32}


def plain_model():
    import torch
    from transformers import CLIPConfig, CLIPModel

    s = PLAIN_SHAPE
    text = {"hidden_size": s["hidden"], "intermediate_size": s["mlp"], "num_hidden_layers": s["layers"],
            "num_attention_heads": s["heads"], "max_position_embeddings": s["tokens"], "vocab_size": 49408,
            "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407}
    vision = {"hidden_size": s["hidden"], "intermediate_size": s["mlp"], "num_hidden_layers": s["layers"],
              "num_attention_heads": s["heads"], "image_size": s["image"], "patch_size": s["patch"]}
    torch.manual_seed(0)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=s["projection"]))


def plain_pixels(blob: bytes, flip: bool = False):
    import torch
    from PIL import ImageOps

    from stylesearch.data.images import decode_image
    from stylesearch.model.clip import CLIP_MEAN, CLIP_STD

    size = PLAIN_SHAPE["image"]
    image = ImageOps.pad(decode_image(blob), (size, size), color=(255, 255, 255))
    if flip:
        image = ImageOps.mirror(image)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    return (x - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)


def run_plain(catalog, minutes: float, out: Path) -> dict:
    import torch

    from stylesearch.data.prepare import normalise_title
    from stylesearch.model.tokenizer import clip_tokenizer
    from stylesearch.train.losses import contrastive_loss, lr_at

    model, tokenizer = plain_model(), clip_tokenizer()
    train = catalog.split("train")
    blobs, titles = train["image"].tolist(), train["title"].astype(str).tolist()
    groups = np.unique([normalise_title(t) for t in titles], return_inverse=True)[1]
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=5e-4)
    rng = np.random.default_rng(0)
    budget, started, step, epoch = minutes * 60, time.monotonic(), 0, 0
    model.train()
    while time.monotonic() - started < budget:
        order = rng.permutation(len(train))
        for start in range(0, len(order) - 127, 128):
            idx = order[start:start + 128]
            lr = lr_at(step, base_lr=5e-4, warmup=100, total=10**9, elapsed=time.monotonic() - started,
                       budget=budget)
            for g in opt.param_groups:
                g["lr"] = lr
            pixels = torch.stack([plain_pixels(blobs[i], flip=rng.random() < 0.5) for i in idx])
            tok = tokenizer([titles[i] for i in idx], padding=True, truncation=True, max_length=32,
                            return_tensors="pt")
            im = torch.nn.functional.normalize(model.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
            tx = torch.nn.functional.normalize(model.get_text_features(**tok).pooler_output, dim=-1)
            g = torch.from_numpy(groups[idx])
            loss = contrastive_loss(im, tx, model.logit_scale, g[:, None] == g[None, :])
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))
            step += 1
            if time.monotonic() - started >= budget:
                break
        epoch += 1
    trained = time.monotonic() - started
    model.eval()

    @torch.inference_mode()
    def images(blobs):
        out = [model.get_image_features(pixel_values=torch.stack([plain_pixels(b) for b in blobs[i:i + 256]]))
               .pooler_output for i in range(0, len(blobs), 256)]
        return torch.nn.functional.normalize(torch.cat(out), dim=-1).numpy()

    @torch.inference_mode()
    def texts(items):
        out = []
        for i in range(0, len(items), 256):
            tok = tokenizer(list(items[i:i + 256]), padding=True, truncation=True, max_length=32,
                            return_tensors="pt")
            out.append(model.get_text_features(**tok).pooler_output)
        return torch.nn.functional.normalize(torch.cat(out), dim=-1).numpy()

    result = score(images, texts, catalog.split("test"))
    samples = step * 128
    return {**result, "steps": step, "epochs": round(samples / len(train), 2), "train seconds": round(trained),
            "samples/s": round(samples / trained, 1)}


# --- stylesearch arms --------------------------------------------------------------------------------

def parse_arm(spec: str) -> tuple[str, dict, dict]:
    """'small:lr=1e-3,hidden=192' -> ("small", TrainConfig overrides, shape overrides)."""
    from stylesearch.config import TinyPreset, TrainConfig

    name, _, rest = spec.partition(":")
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    shape_fields = {f.name: f for f in dataclasses.fields(TinyPreset)}
    recipe, shape = {}, {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value  # a word: "full_text", "views"
        if key in shape_fields:
            shape[key] = parsed
        elif key in train_fields:
            recipe[key] = parsed
        else:
            raise SystemExit(f"arm {spec}: unknown field {key}")
    return name, recipe, shape


def run_ours(catalog, spec: str, minutes: float, out: Path) -> dict:
    import torch

    from stylesearch.model.clip import ClipEncoder, tiny_model
    from stylesearch.model.presets import PRESETS, train_config
    from stylesearch.train.loop import train

    name, recipe, shape = parse_arm(spec)
    cfg = train_config(name, max_minutes=minutes, threads=1, **recipe)
    loaded = tiny_model(dataclasses.replace(PRESETS[name].shape, **shape), seed=cfg.seed, name=name)
    started = time.monotonic()
    result = train(catalog, cfg, out / "train", loaded=loaded)
    trained = time.monotonic() - started
    from stylesearch.model.clip import load_model

    best = load_model(str(out / "train" / "best"))
    encoder = ClipEncoder(best, batch_size=256, device=torch.device("cpu"))
    from stylesearch.data.images import decode_image

    scored = score(lambda blobs: encoder.encode_images([decode_image(b) for b in blobs]), encoder.encode_texts,
                   catalog.split("test"))
    steps = result.history["steps"]
    samples = sum(cfg.batch_size for _ in steps)
    return {**scored, "steps": result.steps, "epochs": round(samples / len(catalog.split("train")), 2),
            "train seconds": round(trained), "samples/s": round(samples / trained, 1),  # as the plain arm's
            "stopped": result.stopped, "config": dataclasses.asdict(cfg),
            "shape": dataclasses.asdict(dataclasses.replace(PRESETS[name].shape, **shape))}


# --- driver ---------------------------------------------------------------------------------------------

def run_arm(args: argparse.Namespace) -> None:
    import torch

    from stylesearch.data.prepare import load_processed

    torch.set_num_threads(1)
    catalog = load_processed(args.work / "catalog")
    out = args.work / safe(args.arm)
    out.mkdir(parents=True, exist_ok=True)
    if args.arm == "plain":
        result = run_plain(catalog, args.minutes, out)
    else:
        result = run_ours(catalog, args.arm, args.minutes, out)
    (out / "score.json").write_text(json.dumps(result, indent=2, default=str))


def safe(spec: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED))
    parser.add_argument("--work", type=Path, default=Path("/tmp/train-budget"))
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--arms", default="plain,small", help="comma-free list separated by ';' or ','-free specs")
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm in this process
    args = parser.parse_args()
    if args.arm:
        run_arm(args)
        return
    from stylesearch.config import PrepareConfig
    from stylesearch.data.catalog import read_catalog
    from stylesearch.data.prepare import prepare

    if not (args.work / "catalog" / "manifest.json").exists():
        prepare(read_catalog(args.data), PrepareConfig(), args.work / "catalog")
    arms = [a for a in args.arms.split(";") if a] if ";" in args.arms else args.arms.split(",")
    cores = os.sched_getaffinity(0)
    procs = []
    load_before = os.getloadavg()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for i, arm in enumerate(arms):
        core = sorted(cores)[i % len(cores)]
        cmd = ["taskset", "-c", str(core), sys.executable, __file__, "--arm", arm, "--work", str(args.work),
               "--minutes", str(args.minutes)]
        log = open(args.work / f"{safe(arm)}.log", "w")  # noqa: SIM115 (closed when the process ends)
        procs.append((arm, subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)))
    for arm, proc in procs:
        if proc.wait() != 0:
            print(f"arm {arm} failed; see {args.work / (safe(arm) + '.log')}")
    rows = {arm: json.loads((args.work / safe(arm) / "score.json").read_text()) for arm, _ in procs
            if (args.work / safe(arm) / "score.json").exists()}
    metrics = ["title R@10", "MRR", "title R@1", "articleType P@1", "in-batch acc@32", "steps", "epochs",
               "samples/s"]
    lines = [f"| {args.minutes:g} min, one core each | " + " | ".join(metrics) + " |",
             "|---" * (len(metrics) + 1) + "|"]
    for arm, r in rows.items():
        lines.append(f"| {arm} | " + " | ".join(f"{r[m]:.3f}" if isinstance(r[m], float) and r[m] < 10 else str(r[m])
                                               for m in metrics) + " |")
    if "plain" in rows:
        for arm, r in rows.items():
            if arm != "plain":
                plain = rows["plain"]
                lines.append(f"\n{arm} / plain: title R@10 x{r['title R@10'] / max(plain['title R@10'], 1e-9):.2f}, "
                             f"MRR x{r['MRR'] / max(plain['MRR'], 1e-9):.2f}")
    import torch

    lines.append(f"\ncommand: OMP_NUM_THREADS=1 python benchmarks/train_budget.py --minutes {args.minutes:g} "
                 f"--arms '{args.arms}'")
    lines.append(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
                 f"{torch.__version__}; load average before {load_before}, after {os.getloadavg()}; "
                 f"test split {next(iter(rows.values()))['test products'] if rows else '?'} products; "
                 f"{time.strftime('%Y-%m-%d')}")
    text = "\n".join(lines) + "\n"
    (args.work / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
