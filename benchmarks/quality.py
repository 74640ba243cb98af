"""Issue 5 experiment: does each search-quality technique help on the real catalogue, on a CPU budget?

    OMP_NUM_THREADS=1 python benchmarks/quality.py --data ../shared/data/fashion-product-images-small/dev.parquet \
        --work /tmp/quality --seeds 0,1,2

Stages (each skipped when its output exists, so a killed run resumes):
  1. prepare the catalogue (seed 0 split) and a fine-tuning copy whose train split is 12,800 products;
  2. base: the tiny preset trained from scratch on the full train split, 1 epoch capped at 7 minutes;
  3. fine-tunes of the base on the 12,800 products, 1 epoch (200 steps of 64), identical but for one
     option each (VARIANTS: control = random batches and full_text; samplers confusable / mixed / hard;
     text views drawn per step / summed), once per fine-tuning seed;
  4. evaluation of seed 0 on the 3,228-product test split: title recall, attribute P@10 (queries from
     held-out metadata), look-alike confusion, zero-shot type accuracy; hybrid search on the control's
     CLIP scores; WiSE-FT at alpha 0.5 and an alpha sweep; then an HTML report of the control.
  5. a paired bootstrap (same queries) of each variant against the control of the same seed.
  6. every seed: the same metrics per (variant, seed), mean and spread over seeds, and each variant's
     difference from the control averaged over seeds with a bootstrap interval over queries.
Results: <work>/results.json, results.md, paired.json, seeds.json, seeds.md, report/report.html.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from stylesearch.config import PrepareConfig, TrainConfig

FT_TRAIN = 12_800
# Pinned to the single caption and random batches, whatever TrainConfig's defaults are: the control and base.
BASE = TrainConfig(base_model="tiny", lr=5e-4, batch_size=64, epochs=1, warmup_steps=50, max_minutes=7.0, seed=0,
                   sampler="random", text_views="full_text")
# The pixel cache, crop-flip and bf16 are the from-scratch presets' fast path (issue 12); every variant gets them.
FINE_TUNE = dict(lr=1e-4, batch_size=64, epochs=1, warmup_steps=20, max_minutes=12.0, seed=0, sampler="random",
                 text_views="full_text", pixel_cache=True, augment="crop-flip", bf16=True)
VARIANTS = {"control": {}, "confusable": {"sampler": "confusable"}, "mixed": {"sampler": "mixed"},
            "hard": {"sampler": "hard"}, "views": {"text_views": "views"}, "views-sum": {"text_views": "views-sum"}}


def run_dir(work: Path, name: str, seed: int = 0) -> Path:
    """Seed 0 keeps the plain name, so the single-seed results of earlier runs stay where they were."""
    return work / "runs" / (name if seed == 0 else f"{name}-seed{seed}")


def prepare_catalogues(data: str, work: Path) -> tuple[Path, Path]:
    from stylesearch.data.catalog import read_catalog
    from stylesearch.data.prepare import PrepareReport, load_processed, prepare, write_processed

    full, ft = work / "catalog", work / "catalog-ft"
    if not (full / "manifest.json").is_file():
        prepare(read_catalog(data), PrepareConfig(seed=0), full)
    if not (ft / "manifest.json").is_file():
        catalog = load_processed(full)
        frame = catalog.frame
        train = frame[frame["split"] == "train"].sample(FT_TRAIN, random_state=0)
        keep = frame[(frame["split"] != "train") | frame.index.isin(train.index)].reset_index(drop=True)
        report = PrepareReport(source=f"{catalog.manifest['source']} (train subset {FT_TRAIN}, seed 0)",
                               rows_in=len(frame), rows_out=len(keep),
                               split_sizes={s: int((keep["split"] == s).sum()) for s in ("train", "val", "test")})
        write_processed(keep, report, PrepareConfig(), ft)
    return full, ft


def use_base(checkpoint: Path, work: Path) -> None:
    """Make `checkpoint` the study's base: runs/base/best links to it, and its config marks the base as trained."""
    import shutil

    base = work / "runs" / "base"
    base.mkdir(parents=True, exist_ok=True)
    link = base / "best"
    if link.is_symlink() or link.exists():
        if link.resolve() == checkpoint.resolve():
            return
        raise SystemExit(f"{base} already holds another base; use a fresh --work")
    link.symlink_to(checkpoint.resolve(), target_is_directory=True)
    shutil.copyfile(checkpoint / "train_config.json", base / "train_config.json")
    history = checkpoint.parent / "history.json"
    if history.is_file():
        shutil.copyfile(history, base / "history.json")


def train_all(full: Path, ft: Path, work: Path, seeds: list[int], variants: list[str]) -> dict[str, float]:
    from stylesearch.data.prepare import load_processed
    from stylesearch.train.loop import train

    seconds = {}
    runs = [("base", full, BASE, work / "runs" / "base")]
    base_best = str(work / "runs" / "base" / "best")
    runs += [(f"{name} seed {seed}", ft, replace(TrainConfig(base_model=base_best, **FINE_TUNE), seed=seed,
                                                 **VARIANTS[name]), run_dir(work, name, seed))
             for seed in seeds for name in variants]
    for name, catalog, cfg, out in runs:
        if (out / "train_config.json").is_file():
            continue
        started = time.monotonic()
        result = train(load_processed(catalog), cfg, out)
        seconds[name] = time.monotonic() - started
        print(f"{name}: {result.stopped}, {result.steps} steps, {seconds[name]:.0f} s", flush=True)
    return seconds


def evaluate_all(full: Path, work: Path, alpha: float, sweep: list[float]) -> dict:
    from stylesearch.data.prepare import load_processed
    from stylesearch.evaluate.quality import alpha_sweep, evaluate_quality
    from stylesearch.evaluate.report import build_report
    from stylesearch.model.clip import load_model
    from stylesearch.model.merge import interpolate

    test = load_processed(full).split("test")
    base = load_model(str(work / "runs" / "base" / "best"))
    models = {"base": base}
    models.update({name: load_model(str(run_dir(work, name) / "best")) for name in VARIANTS})
    models[f"WiSE-FT α={alpha:g} (control)"] = interpolate(base, models["control"], alpha)
    results = {}
    for name, loaded in models.items():
        started = time.monotonic()
        results[name] = evaluate_quality(loaded, test, seed=0, hybrid=name == "control")
        print(f"evaluated {name} in {time.monotonic() - started:.0f} s", flush=True)
    rows = alpha_sweep(base, models["control"], test, sweep)
    steps = {name: _steps(work / "runs" / name) for name in ["base", *VARIANTS]}
    out = {"results": results, "sweep": rows, "steps": steps,
           "configs": {"base": json.loads((work / "runs" / "base" / "train_config.json").read_text()),
                       **{n: {**FINE_TUNE, **o} for n, o in VARIANTS.items()}}}
    (work / "results.json").write_text(json.dumps(out, indent=1, default=float))
    report_models = {"base": base, "fine-tuned": models["control"],
                     f"WiSE-FT α={alpha:g}": models[f"WiSE-FT α={alpha:g} (control)"]}
    build_report(report_models, test, work / "report", history=work / "runs" / "control" / "history.json",
                 hybrid_of="fine-tuned", sweep=rows, seed=0,
                 results={"base": results["base"], "fine-tuned": results["control"],
                          f"WiSE-FT α={alpha:g}": results[f"WiSE-FT α={alpha:g} (control)"]},
                 subtitle=f"{len(test)} test products of {full}; tiny CLIP from scratch (base) and its "
                          f"fine-tune on {FT_TRAIN} train products; seed 0")
    return out


def per_query_scores(encoder, test, queries, rel, pairs) -> tuple:
    """Attribute P@10 per query and type look-alike confusion per directed pair, for one model."""
    import numpy as np

    from stylesearch.evaluate.metrics import embed
    from stylesearch.evaluate.quality import clip_rankings, precision_from_rankings, value_queries

    types = test["articleType"].astype(str).to_numpy()
    images = embed(encoder, test).image
    precision = precision_from_rankings(clip_rankings(encoder.encode_texts([q.text for q in queries]), images), rel)
    confusion = []
    for _, a, b in pairs:
        for x, y in ((a, b), (b, a)):
            tops = clip_rankings(encoder.encode_texts(value_queries(test, "articleType", x)), images)
            confusion.append(np.mean([(types[t] == y).any() for t in tops]))
    return precision, np.array(confusion)


def _fixed_queries(full: Path):
    from stylesearch.data.prepare import load_processed
    from stylesearch.evaluate.quality import attribute_queries, lookalike_pairs, relevance

    test = load_processed(full).split("test").reset_index(drop=True)
    queries = attribute_queries(test, seed=0)
    pairs = [p for p in lookalike_pairs(test) if p[0] == "articleType"]
    return test, queries, relevance(test, queries), pairs


def bootstrap(diff, rng, resamples: int = 2000) -> list[float]:
    """Mean of `diff` and its 95% bootstrap interval over the rows (queries or pairs)."""
    import numpy as np

    boots = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(resamples)]
    return [float(diff.mean()), *np.percentile(boots, [2.5, 97.5]).tolist(), len(diff)]


def paired_bootstrap(full: Path, work: Path, resamples: int = 2000) -> dict[str, list[float]]:
    """Each seed-0 variant minus the seed-0 control over the same queries: mean difference and a 95% interval."""
    import numpy as np

    from stylesearch.model.clip import ClipEncoder, load_model

    test, queries, rel, pairs = _fixed_queries(full)
    per = {name: per_query_scores(ClipEncoder(load_model(str(run_dir(work, name) / "best"))), test, queries, rel,
                                  pairs) for name in VARIANTS}
    rng = np.random.default_rng(0)
    out = {}
    for name in [v for v in VARIANTS if v != "control"]:
        for i, metric in enumerate(("attribute P@10", "type look-alike confusion")):
            out[f"{name} {metric}"] = found = bootstrap(per[name][i] - per["control"][i], rng, resamples)
            print(f"{name} {metric}: {found[0]:+.4f} [{found[1]:+.4f}, {found[2]:+.4f}] over {found[3]}", flush=True)
    (work / "paired.json").write_text(json.dumps(out, indent=1))
    return out


SEED_METRICS = ("title R@10", "attribute P@10", "type confusion", "colour confusion", "zero-shot type accuracy")


def seed_study(full: Path, work: Path, seeds: list[int], resamples: int = 2000) -> dict:
    """Every (variant, seed): the table's metrics; then mean and spread over seeds, and paired differences."""
    import numpy as np

    from stylesearch.evaluate.quality import evaluate_quality, mean_confusion
    from stylesearch.model.clip import ClipEncoder, load_model

    test, queries, rel, pairs = _fixed_queries(full)
    cache = work / "seeds"
    cache.mkdir(exist_ok=True)
    runs: dict[str, dict[int, dict]] = {}
    for name in VARIANTS:
        for seed in seeds:
            path = cache / f"{name}-{seed}.json"
            if not path.is_file():
                loaded = load_model(str(run_dir(work, name, seed) / "best"))
                summary = evaluate_quality(loaded, test, seed=0)
                precision, confusion = per_query_scores(ClipEncoder(loaded), test, queries, rel, pairs)
                row = {"title R@10": summary["title_t2i"]["R@10"], "attribute P@10": summary["attribute"]["P@10"],
                       "type confusion": mean_confusion(summary["confusion"], "articleType"),
                       "colour confusion": mean_confusion(summary["confusion"], "baseColour"),
                       "zero-shot type accuracy": summary["category_accuracy"],
                       "per_query_precision": precision.tolist(), "per_pair_confusion": confusion.tolist()}
                path.write_text(json.dumps(row))
                print(f"evaluated {name} seed {seed}: attribute P@10 {row['attribute P@10']:.3f}", flush=True)
            runs.setdefault(name, {})[seed] = json.loads(path.read_text())
    rng = np.random.default_rng(0)
    table, paired = [], {}
    for name, by_seed in runs.items():
        values = {m: [by_seed[s][m] for s in seeds] for m in SEED_METRICS}
        table.append({"variant": name, **{m: f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}"
                                          for m, v in values.items()}})
        if name == "control":
            continue
        for key, metric in (("per_query_precision", "attribute P@10"), ("per_pair_confusion", "type confusion")):
            diffs = np.array([np.array(by_seed[s][key]) - np.array(runs["control"][s][key]) for s in seeds])
            paired[f"{name} {metric}"] = {"mean over seeds": bootstrap(diffs.mean(axis=0), rng, resamples),
                                          "per seed": diffs.mean(axis=1).round(4).tolist()}
        paired[f"{name} title R@10"] = {"per seed": [round(by_seed[s]["title R@10"] - runs["control"][s]["title R@10"],
                                                           4) for s in seeds]}
    out = {"seeds": seeds, "table": table, "paired": paired}
    (work / "seeds.json").write_text(json.dumps(out, indent=1))
    (work / "seeds.md").write_text(seeds_markdown(out))
    print(seeds_markdown(out))
    return out


def seeds_markdown(out: dict) -> str:
    from stylesearch.evaluate.report import markdown_rows

    lines = [f"## Mean ± sd over fine-tuning seeds {out['seeds']}", "", markdown_rows(out["table"]),
             "## Variant minus control (same seed), averaged over seeds; 95% bootstrap interval over queries/pairs", ""]
    rows = []
    for key, value in out["paired"].items():
        mean = value.get("mean over seeds")
        rows.append({"difference": key,
                     "mean [95% CI]": f"{mean[0]:+.4f} [{mean[1]:+.4f}, {mean[2]:+.4f}] over {mean[3]}" if mean
                     else "", "per seed": ", ".join(f"{d:+.4f}" for d in value["per seed"])})
    return "\n".join([*lines, markdown_rows(rows)])


def _steps(run: Path) -> int | None:
    history = run / "history.json"
    return json.loads(history.read_text())["epochs"][-1]["step"] if history.is_file() else None


def results_markdown(out: dict) -> str:
    from stylesearch.evaluate.report import confusion_pairs_rows, markdown_rows, metric_rows

    lines = ["## Systems", "", markdown_rows(metric_rows(out["results"])), "## Attribute P@10 by query shape", ""]
    shapes = []
    for name, r in out["results"].items():
        shapes.append({"system": name, **r["attribute"]["by_template"]})
        if "hybrid" in r:
            shapes.append({"system": f"hybrid ({name})", **r["hybrid"]["attribute"]["by_template"]})
    lines += [markdown_rows(shapes), "## Most confused look-alike pairs (share of queries)", "",
              markdown_rows(confusion_pairs_rows({k: v for k, v in out["results"].items() if not k.startswith("W")},
                                                 top=12)),
              "## WiSE-FT sweep (base <-> control)", "", markdown_rows(out["sweep"]),
              f"Steps: {out['steps']}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="dev.parquet of the shared catalogue")
    parser.add_argument("--work", type=Path, default=Path("/tmp/quality"))
    parser.add_argument("--stage", choices=("all", "train", "evaluate", "paired", "seeds"), default="all")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--sweep", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--seeds", default="0", help="fine-tuning seeds, e.g. 0,1,2")
    parser.add_argument("--base", type=Path, help="a trained checkpoint to use as the base instead of training the "
                        "tiny one (e.g. the `small` preset's best/ from benchmarks/train_budget.py)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="train only these (two processes can split the list between them)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    seeds = [int(x) for x in args.seeds.split(",")]
    full, ft = prepare_catalogues(args.data, args.work)
    if args.base is not None:
        use_base(args.base, args.work)
    if args.stage in ("all", "train"):
        train_all(full, ft, args.work, seeds, args.variants.split(","))
    if args.stage in ("all", "evaluate"):
        out = evaluate_all(full, args.work, args.alpha, [float(a) for a in args.sweep.split(",")])
        (args.work / "results.md").write_text(results_markdown(out))
        print(results_markdown(out))
    if args.stage in ("all", "paired"):
        paired_bootstrap(full, args.work)
    if args.stage in ("all", "seeds") and len(seeds) > 1:
        seed_study(full, args.work, seeds)


if __name__ == "__main__":
    main()
