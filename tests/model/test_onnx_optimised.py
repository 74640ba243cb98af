"""A saved optimised ORT graph gives the same outputs as optimising anew, and never outlives what it was made from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from stylesearch.model import onnx_optimised
from stylesearch.model.onnx_optimised import MODEL, RECORD, WEIGHTS, graph_key, optimised_session, saved_folder
from stylesearch.model.onnx_runtime import session_options

ALL = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
X = np.random.default_rng(7).standard_normal((3, 64)).astype(np.float32)


@pytest.fixture(autouse=True)
def own_hash_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLESEARCH_CACHE", str(tmp_path / "cache"))  # remembered hashes stay in this test


def write_tower(path: Path, seed: int) -> Path:
    """A small two-layer MLP (MatMul, Add, Relu, MatMul): ORT fuses it, and its weights exceed the inline limit."""
    rng = np.random.default_rng(seed)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) / 8, name)
               for name, shape in (("w1", (64, 64)), ("b1", (64,)), ("w2", (64, 32)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "tower", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 32])], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    return path


def options() -> ort.SessionOptions:
    return session_options(1)


def run(session: ort.InferenceSession) -> np.ndarray:
    return session.run(None, {"x": X})[0]


def unoptimised(source: Path) -> np.ndarray:
    plain = options()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return run(ort.InferenceSession(str(source), plain, providers=["CPUExecutionProvider"]))


def folder_of(source: Path) -> Path:
    return saved_folder(source, graph_key(source, ALL))


def test_the_first_session_saves_the_graph_and_the_next_loads_it_unoptimised(tmp_path):
    source = write_tower(tmp_path / "text.onnx", seed=0)
    first = optimised_session(source, options)
    folder = folder_of(source)
    assert {p.name for p in folder.iterdir()} == {MODEL, WEIGHTS, RECORD}
    assert (folder / WEIGHTS).stat().st_size >= 64 * 64 * 4  # the weights live outside the graph, memory-mapped
    again = optimised_session(source, options)
    assert Path(again._model_path) == folder / MODEL
    assert again.get_session_options().graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    np.testing.assert_array_equal(run(again), run(first))
    np.testing.assert_allclose(run(again), unoptimised(source), rtol=1e-5, atol=1e-5)


def test_a_changed_onnx_file_gets_a_new_graph_and_the_stale_one_is_removed(tmp_path):
    source = write_tower(tmp_path / "text.onnx", seed=0)
    optimised_session(source, options)
    stale = folder_of(source)
    write_tower(source, seed=1)  # new weights under the same name, as an in-place re-quantisation writes them
    session = optimised_session(source, options)
    assert Path(session._model_path) == source  # optimised afresh from the new file, not loaded from the old graph
    np.testing.assert_allclose(run(session), unoptimised(source), rtol=1e-5, atol=1e-5)
    assert not stale.exists() and folder_of(source).is_dir()
    np.testing.assert_allclose(run(optimised_session(source, options)), unoptimised(source), rtol=1e-5, atol=1e-5)


def test_a_damaged_saved_graph_is_rebuilt_not_used(tmp_path):
    source = write_tower(tmp_path / "text.onnx", seed=0)
    optimised_session(source, options)
    weights = folder_of(source) / WEIGHTS
    weights.write_bytes(bytes(weights.stat().st_size))  # same size, every weight zero
    session = optimised_session(source, options)
    assert Path(session._model_path) == source
    np.testing.assert_allclose(run(session), unoptimised(source), rtol=1e-5, atol=1e-5)
    record = json.loads((folder_of(source) / RECORD).read_text())
    assert onnx_optimised._fresh(folder_of(source), record["key"])  # rewritten whole


def test_a_graph_saved_on_another_cpu_or_ort_version_is_not_used(tmp_path, monkeypatch):
    source = write_tower(tmp_path / "text.onnx", seed=0)
    optimised_session(source, options)
    here = folder_of(source)
    monkeypatch.setattr(onnx_optimised, "cpu_signature", lambda: "another-cpu")
    assert folder_of(source) != here
    assert Path(optimised_session(source, options)._model_path) == source
    monkeypatch.setattr(ort, "__version__", "0.0.0")
    assert Path(optimised_session(source, options)._model_path) == source
    assert [p.name for p in (source.parent / "optimised").iterdir()] == [folder_of(source).name]


def test_a_folder_it_cannot_write_still_serves(tmp_path, monkeypatch):
    source = write_tower(tmp_path / "text.onnx", seed=0)

    def read_only(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(onnx_optimised, "atomic_dir", read_only)
    session = optimised_session(source, options)
    np.testing.assert_allclose(run(session), unoptimised(source), rtol=1e-5, atol=1e-5)
    assert not (tmp_path / "optimised").exists()


def test_a_session_without_optimisation_saves_nothing(tmp_path):
    source = write_tower(tmp_path / "text.onnx", seed=0)

    def plain() -> ort.SessionOptions:
        made = options()
        made.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return made

    np.testing.assert_array_equal(run(optimised_session(source, plain)), unoptimised(source))
    assert not (tmp_path / "optimised").exists()
