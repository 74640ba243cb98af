"""Fuzz the `stylesearch serve` API from its OpenAPI schema with schemathesis: zero server errors.

    .venv/bin/python benchmarks/fuzz_api.py                       # every operation, 100 examples each
    .venv/bin/python benchmarks/fuzz_api.py --max-examples 300 --seed 1

It starts a real `stylesearch serve` on 127.0.0.1 (tiny model, drawn catalogue), then runs
`schemathesis run` against http://127.0.0.1:PORT/openapi.json with the examples, coverage (boundary
and invalid values derived from the schema) and fuzzing phases, in positive and negative modes; half
the generated product ids are real ones (a schemathesis dictionary), so the product, similar and
image endpoints are fuzzed past their 404. The
check that must pass is `not_a_server_error`; the server's own log is also scanned for 5xx lines
and tracebacks. Needs `pip install -e .[dev]` (schemathesis).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_server import build_index, server_errors_in_log, serving  # noqa: E402


def schemathesis_command(config: Path) -> list[str]:
    found = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    return [found, "--config-file", str(config)]


def write_config(index: Path, out: Path) -> Path:
    """Half the time a product id is a real one, so /similar and /images get past the 404 and their
    query parameters are fuzzed too; the other half it is generated from the schema."""
    import pandas as pd

    ids = pd.read_parquet(index / "products.parquet", columns=["id"])["id"].astype(str).tolist()[:50]
    config = out / "schemathesis.toml"
    config.write_text("[dictionaries.product_ids]\nvalues = [" + ", ".join(json.dumps(i) for i in ids) + "]\n\n"
                      '[parameters]\n"path.product_id" = { dictionary = "product_ids", probability = 0.5 }\n')
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=100, help="Per operation and phase.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--checks", default="not_a_server_error",
                        help="schemathesis checks that must pass (comma-separated); 'all' for conformance too.")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/fuzz"))
    args = parser.parse_args()

    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        index = build_index(workdir, products=args.products)
        config = write_config(index, args.out)
        log = args.out / "server.log"
        with serving(index, log=log) as (base, _):
            command = [*schemathesis_command(config), "run", f"{base}/openapi.json", "--checks", args.checks,
                       "--phases", "examples,coverage,fuzzing", "--mode", "all",
                       "--max-examples", str(args.max_examples), "--seed", str(args.seed), "--workers", "1",
                       "--generation-database", "none", "--request-timeout", "60", "--no-color",
                       "--continue-on-failure",
                       "--report", "junit", "--report-junit-path", str(args.out / "junit.xml")]
            print("$", " ".join(command), flush=True)
            # schemathesis keeps a cache of failures in ./.schemathesis: keep it beside the results.
            run = subprocess.run(command, capture_output=True, text=True, cwd=args.out)
    (args.out / "schemathesis.txt").write_text(run.stdout + run.stderr)
    server_errors = server_errors_in_log(log)
    summary = {
        "command": " ".join(command),
        "exit_code": run.returncode,
        "test_cases": _count(run.stdout, r"(\d+) generated"),
        "operations": _operations(run.stdout),
        "server_log_5xx_or_tracebacks": len(server_errors),
        "tail": run.stdout.strip().splitlines()[-25:],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n".join(summary["tail"]))
    print(f"\nserver log: {len(server_errors)} 5xx lines or tracebacks")
    for line in server_errors[:20]:
        print("  ", line)
    return 0 if run.returncode == 0 and not server_errors else 1


def _count(text: str, pattern: str) -> int | None:
    found = re.findall(pattern, text)
    return sum(int(n) for n in found) if found else None


def _operations(text: str) -> str | None:
    found = re.search(r"Operations:?\s+(.+)", text)
    return found.group(1).strip() if found else None


if __name__ == "__main__":
    sys.exit(main())
