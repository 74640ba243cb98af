"""`--backend` reaches index, search and serve: an ONNX index answers like the torch one."""

import json

from typer.testing import CliRunner

from stylesearch.cli.base import app

runner = CliRunner()


def test_index_and_search_with_the_onnx_backend_match_torch(processed_dir, tiny, tmp_path):
    ckpt = tmp_path / "ckpt"
    tiny.model.save_pretrained(ckpt)
    tiny.processor.save_pretrained(ckpt)
    results = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / f"index-{backend}"
        made = runner.invoke(app, ["index", "--catalog", str(processed_dir), "--model", str(ckpt), "--out", str(out),
                                   "--backend", backend, "--quiet"])
        assert made.exit_code == 0, made.output
        found = runner.invoke(app, ["search", "red striped tshirts", "--index", str(out), "-k", "5", "--json",
                                    "--backend", backend])
        assert found.exit_code == 0, found.output
        results[backend] = json.loads(found.output)["hits"]
    assert [h["id"] for h in results["onnx"]] == [h["id"] for h in results["torch"]]
    assert (ckpt / "onnx").is_dir()  # exported once, beside the checkpoint


def test_unknown_backend_is_a_clear_error(processed_dir, tmp_path):
    made = runner.invoke(app, ["index", "--catalog", str(processed_dir), "--model", "tiny", "--out",
                               str(tmp_path / "i"), "--backend", "tensorrt"])
    assert made.exit_code == 2 and "tensorrt" in made.output
