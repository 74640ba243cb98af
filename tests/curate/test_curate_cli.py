"""`stylesearch tag` and `stylesearch audit` through Typer's test runner, over a tiny-model index."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from stylesearch.cli.base import app

runner = CliRunner()


def test_tag_command_writes_suggestions_and_a_filled_catalogue(processed_dir: Path, tiny_index: Path, tmp_path):
    out = tmp_path / "tag"
    result = runner.invoke(app, ["tag", "--catalog", str(processed_dir), "--index", str(tiny_index), "--out", str(out),
                                 "--column", "baseColour", "--column", "gender", "--fill", "--threshold", "0.5"])
    assert result.exit_code == 0, result.output
    assert "baseColour" in result.output and "majority" in result.output
    suggestions = pd.read_parquet(out / "suggestions.parquet")
    assert set(suggestions["column"]) == {"baseColour", "gender"}
    summary = json.loads((out / "tags.json").read_text())
    assert set(summary["calibration"]) == {"baseColour", "gender"} and (out / "catalog" / "manifest.json").is_file()


def test_audit_command_writes_the_page_and_tables(processed_dir: Path, tiny_index: Path, tmp_path):
    out = tmp_path / "audit"
    result = runner.invoke(app, ["audit", "--catalog", str(processed_dir), "--index", str(tiny_index),
                                 "--out", str(out), "--top", "10"])
    assert result.exit_code == 0, result.output
    assert "contradict" in result.output
    findings = pd.read_parquet(out / "findings.parquet")
    assert set(findings["column"]) == {"articleType", "baseColour", "gender"}
    assert "<h2>Image contradicts metadata</h2>" in (out / "audit.html").read_text()


def test_tag_on_a_folder_that_is_no_catalogue_is_one_line(tiny_index: Path, tmp_path):
    result = runner.invoke(app, ["tag", "--catalog", str(tmp_path), "--index", str(tiny_index)])
    assert result.exit_code == 2 and "not a processed catalogue" in result.output
