"""Which search mode serves shoppers: CLIP alone or hybrid, on queries that are not product titles.

    python benchmarks/search_modes.py --model /tmp/final/small/train/best --catalog /tmp/final/catalog

Queries are built from the held-out test split's metadata, never copied from titles (titles favour
anything that matches words): "{gender} {colour} {type}" ("women red dress"), "{colour} {type}",
"{type} for {gender}" and "{usage} {type}", 100 of each drawn uniformly over the combinations that
at least 3 test products have (`stylesearch.evaluate.quality.attribute_queries`). A result is relevant when
its metadata has every attribute the query names; the figure is precision@10 over the whole test
gallery. Title R@10 is printed for both modes too, as a check that hybrid does not lose what CLIP finds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from stylesearch.data.prepare import load_processed
from stylesearch.evaluate.quality import evaluate_quality
from stylesearch.model.clip import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained checkpoint directory")
    parser.add_argument("--catalog", type=Path, required=True, help="the prepared catalogue it was trained on")
    parser.add_argument("--per-template", type=int, default=100)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    test = load_processed(args.catalog).split("test")
    result = evaluate_quality(load_model(args.model), test, hybrid=True, per_template=args.per_template)
    clip, hybrid = result["attribute"], result["hybrid"]["attribute"]
    print("| query template | CLIP P@10 | hybrid P@10 |\n|---|---|---|")
    for template, value in clip["by_template"].items():
        print(f"| {template} | {value:.3f} | {hybrid['by_template'][template]:.3f} |")
    print(f"| **all {clip['queries']} queries** | **{clip['P@10']:.3f}** | **{hybrid['P@10']:.3f}** |")
    print(f"| title R@10 (titles as queries) | {result['title_t2i']['R@10']:.3f} | "
          f"{result['hybrid']['title_t2i_R@10']:.3f} |")
    print(f"\n{len(test)} test products; model {args.model}; load average {os.getloadavg()}; "
          f"{time.strftime('%Y-%m-%d')}")
    print(f"command: python benchmarks/search_modes.py --model {args.model} --catalog {args.catalog}")
    if args.out:
        args.out.write_text(json.dumps({"clip": clip, "hybrid": hybrid, "title_R@10": {
            "clip": result["title_t2i"]["R@10"], "hybrid": result["hybrid"]["title_t2i_R@10"]}}, indent=2))


if __name__ == "__main__":
    main()
