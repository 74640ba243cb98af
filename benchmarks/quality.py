"""Issue 5 experiment: does each search-quality technique help on the real catalogue, on a CPU budget?

    OMP_NUM_THREADS=1 python benchmarks/quality.py --data ../shared/data/fashion-product-images-small/dev.parquet \
        --work /tmp/quality

Stages (each skipped when its output exists, so a killed run resumes):
  1. prepare the catalogue (seed 0 split) and a fine-tuning copy whose train split is 12,800 products;
  2. base: the tiny preset trained from scratch on the full train split, 1 epoch capped at 7 minutes;
  3. three fine-tunes of the base on the 12,800 products, 1 epoch (200 steps of 64), identical but
     for one option each: control (random batches, full_text) / confusable sampler / text views;
  4. evaluation on the 3,228-product test split: title recall, attribute P@10 (queries from held-out
     metadata), look-alike confusion, zero-shot type accuracy; hybrid search on the control's CLIP
     scores; WiSE-FT at alpha 0.5 and an alpha sweep; then an HTML report of the control.
  5. a paired bootstrap (same queries) of each variant against the control.
Results: <work>/results.json, <work>/results.md, <work>/paired.json, <work>/report/report.html.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from stylesearch.config import PrepareConfig, TrainConfig, to_dict

FT_TRAIN = 12_800
BASE = TrainConfig(base_model="tiny", lr=5e-4, batch_size=64, epochs=1, warmup_steps=50, max_minutes=7.0, seed=0)
FINE_TUNE = dict(lr=1e-4, batch_size=64, epochs=1, warmup_steps=20, max_minutes=12.0, seed=0)
VARIANTS = {"control": {}, "confusable": {"sampler": "confusable"}, "views": {"text_views": "views"},
            "hard": {"sampler": "hard"}}


def prepare_catalogues(data: str, work: Path) -> tuple[Path, Path]:
    from stylesearch.catalog import read_catalog
    from stylesearch.prepare import PrepareReport, load_processed, prepare, write_processed

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


def train_all(full: Path, ft: Path, work: Path) -> dict[str, float]:
    from stylesearch.prepare import load_processed
    from stylesearch.train import train

    seconds = {}
    runs = [("base", full, BASE)]
    base_best = str(work / "runs" / "base" / "best")
    runs += [(name, ft, replace(TrainConfig(base_model=base_best, **FINE_TUNE), **opts))
             for name, opts in VARIANTS.items()]
    for name, catalog, cfg in runs:
        out = work / "runs" / name
        if (out / "train_config.json").is_file():
            continue
        started = time.monotonic()
        result = train(load_processed(catalog), cfg, out)
        seconds[name] = time.monotonic() - started
        print(f"{name}: {result.stopped}, {result.steps} steps, {seconds[name]:.0f} s", flush=True)
    return seconds


def evaluate_all(full: Path, work: Path, alpha: float, sweep: list[float]) -> dict:
    from stylesearch.merge import interpolate
    from stylesearch.model import load_model
    from stylesearch.prepare import load_processed
    from stylesearch.quality import alpha_sweep, evaluate_quality
    from stylesearch.report import build_report

    test = load_processed(full).split("test")
    base = load_model(str(work / "runs" / "base" / "best"))
    models = {"base": base}
    models.update({name: load_model(str(work / "runs" / name / "best")) for name in VARIANTS})
    models[f"WiSE-FT α={alpha:g} (control)"] = interpolate(base, models["control"], alpha)
    results = {}
    for name, loaded in models.items():
        started = time.monotonic()
        results[name] = evaluate_quality(loaded, test, seed=0, hybrid=name == "control")
        print(f"evaluated {name} in {time.monotonic() - started:.0f} s", flush=True)
    rows = alpha_sweep(base, models["control"], test, sweep)
    steps = {name: _steps(work / "runs" / name) for name in ["base", *VARIANTS]}
    out = {"results": results, "sweep": rows, "steps": steps,
           "configs": {"base": to_dict(BASE), **{n: {**FINE_TUNE, **o} for n, o in VARIANTS.items()}}}
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


def paired_bootstrap(full: Path, work: Path, resamples: int = 2000) -> dict[str, list[float]]:
    """Each variant minus the control over the same queries: mean difference and a 95% bootstrap interval."""
    import numpy as np

    from stylesearch.evaluate import embed
    from stylesearch.model import ClipEncoder, load_model
    from stylesearch.prepare import load_processed
    from stylesearch.quality import (
        attribute_queries,
        clip_rankings,
        lookalike_pairs,
        precision_from_rankings,
        relevance,
        value_queries,
    )

    test = load_processed(full).split("test").reset_index(drop=True)
    queries = attribute_queries(test, seed=0)
    rel = relevance(test, queries)
    pairs = [p for p in lookalike_pairs(test) if p[0] == "articleType"]
    types = test["articleType"].astype(str).to_numpy()
    per = {}
    for name in VARIANTS:
        encoder = ClipEncoder(load_model(str(work / "runs" / name / "best")))
        images = embed(encoder, test).image
        precision = precision_from_rankings(clip_rankings(encoder.encode_texts([q.text for q in queries]), images), rel)
        confusion = []
        for _, a, b in pairs:
            for x, y in ((a, b), (b, a)):
                tops = clip_rankings(encoder.encode_texts(value_queries(test, "articleType", x)), images)
                confusion.append(np.mean([(types[t] == y).any() for t in tops]))
        per[name] = (precision, np.array(confusion))
    rng = np.random.default_rng(0)
    out = {}
    for name in [v for v in VARIANTS if v != "control"]:
        for i, metric in enumerate(("attribute P@10", "type look-alike confusion")):
            diff = per[name][i] - per["control"][i]
            boots = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(resamples)]
            out[f"{name} {metric}"] = [float(diff.mean()), *np.percentile(boots, [2.5, 97.5]).tolist(), len(diff)]
            print(f"{name} {metric}: {diff.mean():+.4f} [{out[f'{name} {metric}'][1]:+.4f}, "
                  f"{out[f'{name} {metric}'][2]:+.4f}] over {len(diff)}", flush=True)
    (work / "paired.json").write_text(json.dumps(out, indent=1))
    return out


def _steps(run: Path) -> int | None:
    history = run / "history.json"
    return json.loads(history.read_text())["epochs"][-1]["step"] if history.is_file() else None


def results_markdown(out: dict) -> str:
    from stylesearch.report import confusion_pairs_rows, markdown_rows, metric_rows

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
    parser.add_argument("--stage", choices=("all", "train", "evaluate", "paired"), default="all")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--sweep", default="0,0.25,0.5,0.75,1")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    full, ft = prepare_catalogues(args.data, args.work)
    if args.stage in ("all", "train"):
        train_all(full, ft, args.work)
    if args.stage in ("all", "evaluate"):
        out = evaluate_all(full, args.work, args.alpha, [float(a) for a in args.sweep.split(",")])
        (args.work / "results.md").write_text(results_markdown(out))
        print(results_markdown(out))
    if args.stage in ("all", "paired"):
        paired_bootstrap(full, args.work)


if __name__ == "__main__":
    main()
