import json

from typer.testing import CliRunner

from stylesearch.cli.base import app

runner = CliRunner()


def test_prepare_command_writes_the_processed_catalogue(synthetic_dir, tmp_path):
    result = runner.invoke(app, ["prepare", "--data", str(synthetic_dir), "--out", str(tmp_path / "cat")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "cat" / "manifest.json").read_text())
    assert manifest["count"] == sum(manifest["split_sizes"].values()) > 100
    assert "rows kept" in result.output


def test_user_mistakes_exit_2_with_a_message(tmp_path):
    result = runner.invoke(app, ["prepare", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no such file" in result.output
    result = runner.invoke(app, ["train", "--catalog", str(tmp_path), "--model", "tiny"])
    assert result.exit_code == 2 and "stylesearch prepare" in result.output


def test_an_unknown_loss_is_refused_before_any_training(processed_dir, tmp_path):
    result = runner.invoke(app, ["train", "--catalog", str(processed_dir), "--model", "tiny", "--loss", "hinge",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "unknown loss 'hinge'; use one of softmax, sigmoid" in result.output
    assert not (tmp_path / "run" / "last").exists()


def test_evaluate_command_compares_base_and_fine_tuned(processed_dir, tmp_path, tiny):
    tiny.model.save_pretrained(tmp_path / "ckpt")
    tiny.processor.save_pretrained(tmp_path / "ckpt")
    result = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "ckpt"), "--base", "tiny",
                                 "--catalog", str(processed_dir), "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    base, tuned = report["models"].values()
    assert base["t2i"] == tuned["t2i"]  # the same weights score the same
    assert "t2i R@10" in (tmp_path / "eval" / "eval.md").read_text()


def test_download_offline_fails_at_once_with_what_to_pass(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = runner.invoke(app, ["data", "download", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--data" in result.output


def test_demo_runs_end_to_end_offline(tmp_path):
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path / "demo"), "--products", "200", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "OFFLINE DEMO" in result.output and '"red dress"' in result.output
    # Each example search says how many of its top 3 have the type and colour asked for.
    assert result.output.count('"  P@3 ') == 5 and "mean P@3 over the 5 example searches" in result.output
    for stage in ("catalog/manifest.json", "train/best/model.safetensors", "eval/eval.json", "index/manifest.json"):
        assert (tmp_path / "demo" / stage).is_file(), stage
