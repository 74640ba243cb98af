"""The quality report renders offline: every image inline, nothing fetched from elsewhere; the CLI writes it."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fakes import same_model_weights
from stylesearch.cli.base import app
from stylesearch.config import TrainConfig
from stylesearch.data.prepare import load_processed
from stylesearch.evaluate.report import build_report, most_confused
from stylesearch.model.checkpoint import save_checkpoint
from stylesearch.model.clip import load_model, tiny_model

HISTORY = {"steps": [{"step": s, "epoch": 0, "loss": 4 - s / 10, "lr": 1e-4, "samples_per_s": 50} for s in range(1, 6)],
           "epochs": [{"epoch": 1, "step": 5, "R@1": 0.1, "R@5": 0.3, "R@10": 0.4, "val_loss": 3.5}]}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report-run")
    save_checkpoint(tiny_model(seed=1), root / "best", TrainConfig(base_model="tiny", seed=0), info={})
    (root / "history.json").write_text(json.dumps(HISTORY))
    return root


def _assert_self_contained(page: str) -> None:
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"(?:src|href)\s*=\s*['\"](?!data:)", page), "an asset that is not inline"
    assert not re.search(r"https?://|url\(", page), "a reference to the network"
    sources = re.findall(r"src='(data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+))'", page)
    assert sources
    for _, kind, payload in sources:
        data = base64.b64decode(payload)
        assert data.startswith(b"\x89PNG" if kind == "png" else b"\xff\xd8")


def test_report_is_self_contained_with_embedded_figures_and_thumbnails(processed_dir, checkpoints, tmp_path):
    frame = load_processed(processed_dir).frame.head(80)
    models = {"base": tiny_model(seed=0), "fine-tuned": load_model(str(checkpoints / "best"))}
    report = build_report(models, frame, tmp_path, history=checkpoints / "history.json", hybrid_of="fine-tuned",
                          sweep=[{"alpha": 0.0, "title_R@10": 0.1, "title_R@1": 0.0, "category_accuracy": 0.2},
                                 {"alpha": 1.0, "title_R@10": 0.3, "title_R@1": 0.1, "category_accuracy": 0.1}],
                          examples=["red shirt", "blue jeans"])
    page = (tmp_path / "report.html").read_text()
    _assert_self_contained(page)
    for caption in ("Training curves", "WiSE-FT", "Recall per articleType", "Confusion matrix", "Example queries"):
        assert caption in page
    assert page.count("data:image/jpeg") == 2 * 3 * 5  # 2 queries x (base, fine-tuned, hybrid) x 5 thumbnails
    assert [r["system"] for r in report["metrics"]] == ["base", "fine-tuned", "hybrid (fine-tuned)"]
    markdown = (tmp_path / "report.md").read_text()
    assert "| system |" in markdown and "figures/confusion.png" in markdown
    assert (tmp_path / "figures" / "training.png").read_bytes().startswith(b"\x89PNG")


def test_most_confused_ranks_types_by_off_diagonal_counts():
    confusion = {"Dresses": {"Dresses": 8, "Nightdress": 5}, "Nightdress": {"Dresses": 3, "Nightdress": 1},
                 "Watches": {"Watches": 20}}
    assert most_confused(confusion, 2) == ["Dresses", "Nightdress"]


def test_cli_merge_and_report(processed_dir, checkpoints, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["merge", "--model", str(checkpoints / "best"), "--alpha", "1", "--out",
                                 str(tmp_path / "wise")])
    assert result.exit_code == 0, result.output
    assert same_model_weights(load_model(str(tmp_path / "wise")), load_model(str(checkpoints / "best")))
    result = runner.invoke(app, ["report", "--model", str(checkpoints / "best"), "--catalog", str(processed_dir),
                                 "--split", "train", "--max-items", "60", "--alpha", "0.5", "--out",
                                 str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    _assert_self_contained((tmp_path / "report" / "report.html").read_text())
    assert "WiSE-FT α=0.5" in (tmp_path / "report" / "report.md").read_text()


def test_cli_merge_refuses_an_alpha_outside_zero_to_one(checkpoints, tmp_path):
    result = CliRunner().invoke(app, ["merge", "--model", str(checkpoints / "best"), "--alpha", "2", "--out",
                                      str(tmp_path / "x")])
    assert result.exit_code != 0


def test_cli_evaluate_sweeps_alpha_and_plots(processed_dir, checkpoints, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "--model", str(checkpoints / "best"), "--catalog",
                                      str(processed_dir), "--split", "train", "--max-items", "40", "--sweep", "0,1",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "alpha_sweep.json").read_text())["rows"]
    assert [r["alpha"] for r in rows] == [0.0, 1.0]
    assert (tmp_path / "alpha_sweep.png").read_bytes().startswith(b"\x89PNG")
