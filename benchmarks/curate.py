"""Issue 17 figures (docs/catalogue.md): tagging, the audit by injection, and "like this, but in red".

    nice -n 19 python benchmarks/curate.py --catalog /tmp/b1/catalog --model /tmp/curate-model \
        --work /tmp/curate-bench --seeds 0,1,2

Every image is encoded once per model and cached under <work> (train's make the image prototypes). Then:
  1. tag: prototypes from train, the mix and a temperature per column from val; accuracy, macro-F1 and
     ECE on test (values hidden: the image alone decides) against the train split's majority value, for
     text prompts alone and for the default (text + image prototypes + prior, as val chooses);
  2. audit: 2% of test colours and article types flipped to another value (drawn by frequency), the
     test split audited, precision@100 and recall of the flips, per seed; near-duplicate precision over
     val+test (same normalised title or same bytes);
  3. compose: test pairs (A, B) of one articleType and gender, different baseColour; query "A, in <B's
     colour>"; relevant: A's type and gender in B's colour. R@10 of image-only, text-only (the edit as
     typed, and A's words with B's colour), vector arithmetic at the default weights, and at the weights
     fitted on val pairs.
Writes <work>/curate.json and <work>/curate.md; the reliability diagram to <work>/reliability.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from stylesearch.config import AuditConfig, ComposeConfig, TagConfig, to_dict
from stylesearch.curate.audit import audit_tag_config, contradictions, near_duplicates
from stylesearch.curate.compose import combine, read_edit
from stylesearch.curate.measure import (
    colour_pairs,
    compose_recall,
    duplicate_precision,
    fit_compose_weights,
    inject_flips,
    injection_scores,
    tag_metrics,
)
from stylesearch.curate.report import reliability_figure
from stylesearch.curate.tag import TagResult, fit_columns, frame_colours, suggest
from stylesearch.curate.vocabulary import catalogue_vectors, cell_strings
from stylesearch.data.prepare import load_processed
from stylesearch.model.clip import load_encoder

EVAL_SPLITS = ("val", "test")


def cached_rows(frame: pd.DataFrame, cache: Path, make, what: str) -> np.ndarray:
    """One array row per catalogue row, made once and kept in `cache` (remade when the row count differs)."""
    if cache.is_file():
        rows = np.load(cache)
        if len(rows) == len(frame):
            return rows
    started = time.perf_counter()
    rows = make(frame)
    print(f"{what} of {len(frame)} images in {time.perf_counter() - started:.0f} s", flush=True)
    np.save(cache, rows)
    return rows


def vectors_for(frame: pd.DataFrame, encoder, work: Path) -> np.ndarray:
    """Image vectors of every row (train's make the image prototypes), cached per model."""
    return cached_rows(frame, work / f"vectors-all-{encoder.fingerprint}.npy",
                       lambda f: catalogue_vectors(f, encoder), "encoded vectors")


def colours_for(frame: pd.DataFrame, work: Path, catalog_sha256: str) -> np.ndarray:
    """Every row's pixel-colour features (curate.pixelcolour), cached per catalogue."""
    return cached_rows(frame, work / f"colours-{catalog_sha256[:16]}.npy", frame_colours, "pixel colours")


# The ablation: text prompts alone at a uniform prior (plain zero-shot), the default with the temperature
# alone (no confidence map), then the default (image prototypes and the train prior allowed, each column
# taking what lowers its val NLL, then the top value's confidence mapped to its val accuracy).
TAG_VARIANTS = {"text only": TagConfig(image_weights=(0.0,), prior_weights=(0.0,), neighbour_weights=(0.0,),
                                       colour_weights=(0.0,)),
                "temperature only": TagConfig(confidence_map=False),
                "no neighbour votes": TagConfig(neighbour_weights=(0.0,)),
                "no pixel colours": TagConfig(colour_weights=(0.0,)), "default": TagConfig()}
# The audit's own settings (AuditConfig: no neighbour votes) against the variants: without the photo's pixel
# colours (curate.pixelcolour), and with the nearest train images' votes (curate.neighbours).
AUDIT_DEFAULT = audit_tag_config(AuditConfig())
AUDIT_VARIANTS = {"no pixel colours": dataclasses.replace(AUDIT_DEFAULT, colour_weights=(0.0,)),
                  "with neighbour votes": dataclasses.replace(AUDIT_DEFAULT,
                                                              neighbour_weights=TagConfig().neighbour_weights)}


def tag_figures(encoder, frame: pd.DataFrame, vectors: np.ndarray, colours: np.ndarray, work: Path) -> dict:
    out = {}
    rows = np.flatnonzero(frame["split"].isin(EVAL_SPLITS).to_numpy())
    for name, cfg in TAG_VARIANTS.items():
        models = fit_columns(encoder, frame, vectors, cfg, colours=colours)
        result = TagResult(suggest(frame.iloc[rows].reset_index(drop=True), vectors[rows], models, colours[rows]),
                           models)
        metrics = tag_metrics(result, frame, cfg)
        for column, m in metrics.items():
            model = models[column]
            m.update(val_ece_before=model.before.ece, val_ece_after=model.after.ece,
                     image_weight=model.image_weight, prior_weight=model.prior_weight,
                     neighbour_weight=model.neighbour_weight, colour_weight=model.colour_weight)
        out[name] = metrics
        if name == "default":
            (work / "reliability.png").write_bytes(
                reliability_figure({c: (m.before, m.after) for c, m in models.items()}))
    return out


def unplanted(top: pd.DataFrame, flips: pd.DataFrame) -> dict:
    """Top findings that were not planted: per column, and how many colour ones the title itself contradicts."""
    planted = set(zip(flips["id"], flips["column"], strict=True))
    rest = top[[(i, c) not in planted for i, c in zip(top["id"], top["column"], strict=True)]]
    colours = rest[rest["column"] == "baseColour"]

    def names(title: str, value: str) -> bool:
        return f" {value.lower()} " in f" {' '.join(str(title).lower().split())} "

    title_says = sum(names(t, p) and not names(t, c)
                     for t, p, c in zip(colours["title"], colours["predicted"], colours["current"], strict=True))
    return {"count": len(rest), "by_column": {str(k): int(v) for k, v in rest["column"].value_counts().items()},
            "colour_title_names_the_prediction": int(title_says)}


def audit_figures(encoder, frame: pd.DataFrame, vectors: np.ndarray, colours: np.ndarray, seeds: list[int],
                  tag_cfg: TagConfig = AUDIT_DEFAULT, label: str = "default", with_duplicates: bool = True) -> dict:
    cfg = AuditConfig()
    columns = ["baseColour", "articleType"]
    test = np.flatnonzero(frame["split"].to_numpy() == "test")
    per_seed = []
    for seed in seeds:
        altered, flips = inject_flips(frame, columns, cfg.flip_share, seed=seed, split="test")
        models = fit_columns(encoder, altered, vectors, tag_cfg, columns, colours)
        findings = contradictions(altered, vectors, models, test, colours)
        by_margin = injection_scores(findings, flips, k=100)
        # The other ranking one could use: the calibrated probability that the value on file is wrong.
        by_doubt = injection_scores(findings.sort_values("p_current", kind="stable", ignore_index=True), flips, k=100)
        per_column = {c: injection_scores(findings[findings["column"] == c].reset_index(drop=True),
                                          flips[flips["column"] == c], k=100) for c in columns}
        per_seed.append({"seed": seed, "margin": by_margin, "p_current": by_doubt, "per_column": per_column,
                         "unplanted_top100": unplanted(findings.head(100), flips)})
        print(f"audit ({label}) seed {seed}: P@100 {by_margin['precision_at_k']:.2f} (by p_current "
              f"{by_doubt['precision_at_k']:.2f}), recall@100 {by_margin['recall_at_k']:.2f}, "
              f"R-precision {by_margin['recall_at_flips']:.2f}", flush=True)
    evaluated = np.flatnonzero(frame["split"].isin(EVAL_SPLITS).to_numpy())
    sub = frame.iloc[evaluated].reset_index(drop=True)
    duplicates = {}
    for threshold in (0.98, 0.99, 0.999) if with_duplicates else ():
        for pixels in (1.0, 0.02, 0.01, 0.005):  # 1.0: embedding alone
            pairs = near_duplicates(sub, vectors[evaluated], AuditConfig(duplicate_cosine=threshold,
                                                                         max_duplicates=20000,
                                                                         max_pixel_difference=pixels))
            duplicates[f"cosine ≥ {threshold}, pixels ≤ {pixels}"] = duplicate_precision(pairs, sub)
    return {"flip_share": cfg.flip_share, "columns": columns, "seeds": per_seed,
            "mean_precision_at_100": float(np.mean([s["margin"]["precision_at_k"] for s in per_seed])),
            "mean_recall_at_100": float(np.mean([s["margin"]["recall_at_k"] for s in per_seed])),
            "mean_recall_at_flips": float(np.mean([s["margin"]["recall_at_flips"] for s in per_seed])),
            "duplicates": duplicates}


def compose_inputs(encoder, frame: pd.DataFrame, vectors: np.ndarray, pairs: list[tuple[int, int]]) -> dict:
    """Per pair: A's image, the edit as typed, A's words before and after the edit."""
    values = {c: sorted({v for v in cell_strings(frame[c]) if v}) for c in ComposeConfig().columns if c in frame}
    colour = cell_strings(frame["baseColour"])
    view = ComposeConfig().view
    records = [dict(zip(view, cells, strict=True)) for cells in zip(*(cell_strings(frame[c]) for c in view),
                                                                     strict=True)]
    edits = [f"in {colour[b].lower()}" for _, b in pairs]
    parsed = [read_edit(e, records[a], values) for e, (a, _) in zip(edits, pairs, strict=True)]
    return {"image": vectors[[a for a, _ in pairs]], "typed": encoder.encode_texts(edits),
            "new": encoder.encode_texts([p.new for p in parsed]), "old": encoder.encode_texts([p.old for p in parsed]),
            "read": float(np.mean([p.changes.get("baseColour") == colour[b] for p, (_, b) in zip(parsed, pairs,
                                                                                                  strict=True)]))}


def compose_figures(encoder, frame: pd.DataFrame, vectors: np.ndarray, n_pairs: int, seed: int) -> dict:
    out = {}
    split_rows = {s: np.flatnonzero(frame["split"].to_numpy() == s) for s in EVAL_SPLITS}
    split_frames = {s: frame.iloc[r].reset_index(drop=True) for s, r in split_rows.items()}
    val_pairs = colour_pairs(split_frames["val"], n_pairs, seed)
    val = compose_inputs(encoder, split_frames["val"], vectors[split_rows["val"]], val_pairs)
    fitted, val_recall = fit_compose_weights(split_frames["val"], vectors[split_rows["val"]], val["image"],
                                             val["new"], val["old"], val_pairs)
    print(f"compose: fitted on {len(val_pairs)} val pairs w_delta={fitted.w_delta} w_text={fitted.w_text} "
          f"(val R@10 {val_recall:.3f})", flush=True)
    test_frame, test_vectors = split_frames["test"], vectors[split_rows["test"]]
    pairs = colour_pairs(test_frame, n_pairs, seed + 1)
    q = compose_inputs(encoder, test_frame, test_vectors, pairs)
    queries = {"image only": q["image"], "text only (edit as typed)": q["typed"],
               "text only (A's words, B's colour)": q["new"],
               "composed, default weights": combine(q["image"], q["new"], q["old"], ComposeConfig()),
               "composed, weights fitted on val": combine(q["image"], q["new"], q["old"], fitted)}
    recall = compose_recall(test_frame, test_vectors, queries, pairs, ks=(10,))
    out = {"pairs": len(pairs), "val_pairs": len(val_pairs), "edit_read_right": q["read"],
           "fitted": to_dict(fitted), "default": to_dict(ComposeConfig()),
           "R@10": {name: r["R@10"] for name, r in recall.items()}}
    for name, r in out["R@10"].items():
        print(f"compose {name}: R@10 {r:.3f}", flush=True)
    return out


def markdown(results: dict) -> str:
    lines = []
    for name, table in results["tag"].items():
        lines += [f"## tag, {name} (test split, values hidden)", "",
                  "| column | values | accuracy | majority acc. | macro-F1 | majority macro-F1 | ECE (test) | "
                  "val ECE before → after | image w | neighbour w | colour w | prior w |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for column, m in table.items():
            lines.append(f"| {column} | {m['values']} | {m['accuracy']:.3f} | {m['majority_accuracy']:.3f} | "
                         f"{m['macro_f1']:.3f} | {m['majority_macro_f1']:.3f} | {m['ece']:.3f} | "
                         f"{m['val_ece_before']:.3f} → {m['val_ece_after']:.3f} | {m['image_weight']:g} | "
                         f"{m['neighbour_weight']:g} | {m['colour_weight']:g} | {m['prior_weight']:g} |")
        lines.append("")
    audit = results["audit"]
    lines += ["## audit (2% of test colours and types flipped)", "",
              "| variant | seed | flips | P@100 (log-odds) | P@100 (p on file) | recall@100 | R-precision | "
              "unplanted in top 100 | of their colours, title names the image's |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, variant in [*results.get("audit_variants", {}).items(), ("default", audit)]:
        for s in variant["seeds"]:
            m, d = s["margin"], s["p_current"]
            u = s["unplanted_top100"]
            lines.append(f"| {name} | {s['seed']} | {m['flips']} | {m['precision_at_k']:.2f} | "
                         f"{d['precision_at_k']:.2f} | {m['recall_at_k']:.2f} | {m['recall_at_flips']:.2f} | "
                         f"{u['by_column']} | {u['colour_title_names_the_prediction']} |")
    lines += ["", "| near-duplicate rule (val+test) | pairs | same title or bytes |", "|---|---|---|"]
    for threshold, d in audit["duplicates"].items():
        lines.append(f"| {threshold} | {d['pairs']} | {d['precision']:.2f} |")
    lines += ["", "## compose (test pairs)", "", "| query | R@10 |", "|---|---|"]
    for name, r in results["compose"]["R@10"].items():
        lines.append(f"| {name} | {r:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/curate-bench"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--pairs", type=int, default=1000)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    catalog = load_processed(args.catalog)
    frame = catalog.frame.reset_index(drop=True)
    encoder = load_encoder(args.model)
    vectors = vectors_for(frame, encoder, args.work)
    colours = colours_for(frame, args.work, str(catalog.manifest.get("catalog_sha256", "catalogue")))
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {"catalog": str(args.catalog), "model": args.model, "fingerprint": encoder.fingerprint,
               "tag": tag_figures(encoder, frame, vectors, colours, args.work),
               "audit_variants": {name: audit_figures(encoder, frame, vectors, colours, seeds, cfg, name, False)
                                  for name, cfg in AUDIT_VARIANTS.items()},
               "audit": audit_figures(encoder, frame, vectors, colours, seeds),
               "compose": compose_figures(encoder, frame, vectors, args.pairs, seeds[0])}
    (args.work / "curate.json").write_text(json.dumps(results, indent=2, default=float))
    (args.work / "curate.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
