"""A full disk, a read-only folder or a denied permission: one line, exit 2, the earlier output untouched."""

from __future__ import annotations

import errno

import pandas as pd
from typer.testing import CliRunner

from stylesearch.cli.base import app, storage_problem
from stylesearch.common.files import sha256_file

runner = CliRunner()


def one_line(result) -> str:
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return " ".join(errors[0][errors[0].index("error:"):].split())


def test_prepare_on_a_full_disk_says_so_in_one_line_and_keeps_the_previous_output(tmp_path, monkeypatch):
    from stylesearch.data.synthetic import make_catalog

    data = make_catalog(tmp_path / "kaggle", n=40, seed=0)
    out = tmp_path / "catalog"
    assert runner.invoke(app, ["prepare", "--data", str(data), "--out", str(out)]).exit_code == 0
    before = sha256_file(out / "catalog.parquet")

    def full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    result = runner.invoke(app, ["prepare", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 2
    line = one_line(result)
    assert "cannot write" in line and "no space left on the device" in line and "MB free there" in line
    assert "Earlier output is untouched" in line
    assert sha256_file(out / "catalog.parquet") == before
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []  # the half-written copy is gone


def test_a_read_only_folder_and_a_denied_permission_are_one_line_each():
    read_only = storage_problem(OSError(errno.EROFS, "Read-only file system", "/mnt/ro/index"))
    assert read_only.startswith("cannot write /mnt/ro/index: the file system is read-only; choose a folder")
    denied = storage_problem(PermissionError(errno.EACCES, "Permission denied", "/root/x"))
    assert denied.startswith("cannot access /root/x: permission denied")
    assert storage_problem(ValueError("something else")) is None  # real bugs still crash loudly


def test_safetensors_full_disk_error_is_recognised_without_an_errno():
    err = Exception('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                    'message: "No space left on device" })')
    assert "no space left on the device" in storage_problem(err)


def test_train_on_a_full_disk_exits_2_with_one_line(processed_dir, tmp_path, monkeypatch):
    import stylesearch.model.checkpoint as checkpoint

    def full(*args, **kwargs):
        raise Exception('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                        'message: "No space left on device" })')

    monkeypatch.setattr(checkpoint, "save_checkpoint", full)
    import stylesearch.train.loop as loop

    monkeypatch.setattr(loop, "save_checkpoint", full)
    result = runner.invoke(app, ["train", "--catalog", str(processed_dir), "--out", str(tmp_path / "run"),
                                 "--model", "tiny", "--epochs", "1", "--batch-size", "16"])
    assert result.exit_code == 2, result.output
    assert "no space left on the device" in one_line(result)
