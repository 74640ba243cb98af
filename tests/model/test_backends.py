"""ONNX Runtime backends give the torch model's embeddings, and their export cache follows the weights."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from stylesearch.data.images import decode_image
from stylesearch.data.prepare import load_processed
from stylesearch.errors import StylesearchError
from stylesearch.evaluate.metrics import recall_at_k
from stylesearch.model import onnx as onnx_module
from stylesearch.model.backends import BACKENDS, load_encoder, make_encoder
from stylesearch.model.clip import ClipEncoder, LoadedModel, tiny_model
from stylesearch.model.encoder import Encoder
from stylesearch.model.onnx import (
    IMAGE,
    INT8,
    MANIFEST,
    TEXT,
    OnnxEncoder,
    export_onnx,
    onnx_dir,
    physical_cores,
    session_options,
    stale_reason,
)
from stylesearch.train.losses import contrastive_loss

QUERIES = [
    "red shirt",
    "Roadster Men Navy Blue Striped Tshirts, Casual",
    "x",
    "watch " * 100,  # over 77 tokens: truncated the same way by both backends
    "Mango Women Pink Polka Dot Dresses",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def align_projections(loaded: LoadedModel, frame, steps: int = 150, seed: int = 0) -> LoadedModel:
    """Train only the two projection layers, on frozen tower outputs, so the tiny model ranks by content.

    The towers run once; the 64x64 projections then take a few hundred full-batch contrastive
    steps in well under a second. The result behaves like a trained model: recall far above chance.
    """
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of tiny ops: a thread pool only adds waits on a busy machine
    try:
        return _align(loaded, frame, steps)
    finally:
        torch.set_num_threads(threads)


def _align(loaded: LoadedModel, frame, steps: int) -> LoadedModel:
    model, processor = loaded.model.eval(), loaded.processor
    with torch.no_grad():
        pixels = processor.image_processor(images=[decode_image(b) for b in frame["image"]],
                                           return_tensors="pt")["pixel_values"]
        tokens = processor.tokenizer(list(frame["full_text"]), padding=True, return_tensors="pt")
        image_pooled = model.vision_model(pixel_values=pixels).pooler_output
        text_pooled = model.text_model(**tokens).pooler_output
    groups = torch.tensor(frame["group"].to_numpy().copy())
    same = groups[:, None] == groups[None, :]
    projections = [model.visual_projection.weight, model.text_projection.weight]
    optimiser = torch.optim.Adam(projections, lr=1e-2)
    for _ in range(steps):
        img = torch.nn.functional.normalize(image_pooled @ projections[0].T, dim=-1)
        txt = torch.nn.functional.normalize(text_pooled @ projections[1].T, dim=-1)
        loss = contrastive_loss(img, txt, torch.tensor(30.0), same)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        # Random towers put every item near one common direction (cosines ~0.99 between any two), which
        # no trained CLIP does and which lets any rounding reorder them: project that direction out of
        # each tower's output so items spread the way training spreads them.
        for pooled, weight in ((image_pooled, projections[0]), (text_pooled, projections[1])):
            mean = torch.nn.functional.normalize((pooled @ weight.T).mean(dim=0, keepdim=True), dim=-1)
            weight.copy_((torch.eye(weight.shape[0]) - mean.T @ mean) @ weight)
            weight.requires_grad_(False)
    return loaded


@pytest.fixture(scope="module")
def frame(processed_dir: Path):
    return load_processed(processed_dir).frame.reset_index(drop=True)


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def encoders(tiny: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Encoder]:
    """The tiny model on every backend, exported once for the module (fp32 and int8)."""
    cache = tmp_path_factory.mktemp("onnx")
    return {backend: make_encoder(tiny, backend, cache_dir=cache, batch_size=16) for backend in BACKENDS}


@pytest.fixture(scope="module")
def trained(frame) -> LoadedModel:
    return align_projections(tiny_model(seed=0), frame)


@pytest.fixture(scope="module")
def images(frame):
    return [decode_image(b) for b in frame["image"][:40]]


def test_every_backend_keeps_the_weights_fingerprint(encoders, tiny):
    for encoder in encoders.values():
        assert isinstance(encoder, Encoder)
        assert encoder.fingerprint == tiny.fingerprint
        assert encoder.dim == tiny.model.config.projection_dim


def test_onnx_fp32_text_embeddings_match_torch(encoders):
    torch_rows = encoders["torch"].encode_texts(QUERIES)
    onnx_rows = encoders["onnx"].encode_texts(QUERIES)
    assert onnx_rows.dtype == np.float32 and onnx_rows.shape == torch_rows.shape
    assert cosines(torch_rows, onnx_rows).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(onnx_rows, axis=1), 1.0, atol=1e-5)


def test_onnx_text_pads_to_the_longest_item_so_batching_does_not_change_a_query(encoders):
    alone = encoders["onnx"].encode_texts(["red shirt"])
    with_long = encoders["onnx"].encode_texts(["red shirt", QUERIES[1]])
    assert cosines(alone, with_long[:1]).min() >= 0.9999


def test_onnx_fp32_image_embeddings_match_torch(encoders, images):
    torch_rows = encoders["torch"].encode_images(images)
    onnx_rows = encoders["onnx"].encode_images(images)
    assert onnx_rows.shape == (len(images), encoders["torch"].dim)
    assert cosines(torch_rows, onnx_rows).min() >= 0.9999


def test_int8_embeddings_stay_close_to_torch(encoders, images):
    assert cosines(encoders["torch"].encode_texts(QUERIES), encoders["onnx-int8"].encode_texts(QUERIES)).min() >= 0.99
    assert cosines(encoders["torch"].encode_images(images), encoders["onnx-int8"].encode_images(images)).min() >= 0.99


def text_to_image_recall_at_10(encoder: Encoder, frame) -> float:
    image_rows = encoder.encode_images([decode_image(b) for b in frame["image"]])
    text_rows = encoder.encode_texts(list(frame["full_text"]))
    groups = frame["group"].to_numpy()
    relevant = groups[:, None] == groups[None, :]
    return recall_at_k(text_rows @ image_rows.T, relevant, (10,))["R@10"]


def test_int8_changes_recall_at_10_by_at_most_one_point(trained, frame, tmp_path):
    base = text_to_image_recall_at_10(make_encoder(trained, "torch"), frame)
    assert base > 0.3, "the aligned projections should lift recall far above chance (10/158)"
    int8 = make_encoder(trained, "onnx-int8", cache_dir=tmp_path / "onnx")
    assert abs(text_to_image_recall_at_10(int8, frame) - base) <= 0.01


def test_image_bytes_pipeline_matches_encode_images(encoders, frame, images):
    onnx = encoders["onnx"]
    blobs = list(frame["image"][: len(images)])
    from_bytes = onnx.encode_image_bytes(blobs)
    assert cosines(from_bytes, onnx.encode_images(images)).min() >= 0.9999


@pytest.fixture()
def exported(encoders, tmp_path) -> Path:
    """A private copy of the module's export (fp32 and int8) that a test may damage."""
    folder = tmp_path / "onnx"
    shutil.copytree(encoders["onnx"].folder, folder)
    return folder


@pytest.fixture()
def exports(monkeypatch, encoders) -> list[Path]:
    """Record each real export; tests of the cache logic copy the module's files instead of re-tracing."""
    calls: list[Path] = []

    def copy_towers(loaded, out):
        calls.append(out)
        for name in (TEXT, IMAGE):
            shutil.copy(encoders["onnx"].folder / name, out / name)

    monkeypatch.setattr(onnx_module, "_export_towers", copy_towers)
    return calls


def test_export_is_reused_while_the_weights_are_unchanged(tiny, exported, exports):
    manifest = (exported / MANIFEST).read_text()
    assert export_onnx(tiny, exported, int8=True) == exported
    assert exports == [] and (exported / MANIFEST).read_text() == manifest


def test_export_is_rebuilt_when_the_checkpoint_changes(tiny, exported):
    changed = copy.deepcopy(tiny)
    with torch.no_grad():
        changed.model.text_projection.weight.mul_(-1.0)  # a "new checkpoint": same shapes, other weights
    assert "checkpoint is now" in stale_reason(exported, changed.fingerprint)
    export_onnx(changed, exported)  # a real export: the new files must run the new weights
    assert json.loads((exported / MANIFEST).read_text())["fingerprint"] == changed.fingerprint
    np.testing.assert_allclose(OnnxEncoder(exported).encode_texts(QUERIES),
                               -make_encoder(tiny, "torch").encode_texts(QUERIES), atol=1e-4)


def test_a_corrupt_file_triggers_a_rebuild(tiny, exported, exports):
    (exported / IMAGE).write_bytes(b"not onnx")
    assert "sha256" in stale_reason(exported, tiny.fingerprint)
    export_onnx(tiny, exported, int8=True)
    assert len(exports) == 1 and stale_reason(exported, tiny.fingerprint, int8=True) is None


def test_int8_is_added_to_a_fresh_fp32_export_without_reexporting(tiny, exported, exports):
    manifest = json.loads((exported / MANIFEST).read_text())
    for name in INT8.values():
        (exported / name).unlink()
        del manifest["files"][name]
    (exported / MANIFEST).write_text(json.dumps(manifest))
    assert stale_reason(exported, tiny.fingerprint) is None
    assert "not exported yet" in stale_reason(exported, tiny.fingerprint, int8=True)
    export_onnx(tiny, exported, int8=True)
    assert exports == [] and stale_reason(exported, tiny.fingerprint, int8=True) is None


def test_local_checkpoints_cache_next_to_themselves_and_presets_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLESEARCH_CACHE", str(tmp_path / "cache"))
    loaded = tiny_model(seed=0)
    assert onnx_dir(loaded, "abc") == tmp_path / "cache" / "stylesearch" / "onnx" / "abc"
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    loaded.name = str(checkpoint)
    assert onnx_dir(loaded, "abc") == checkpoint / "onnx"


def test_unknown_backend_is_refused_by_name(tiny):
    with pytest.raises(StylesearchError, match="onnx-int8"):
        make_encoder(tiny, "tensorrt")


def test_torch_backend_is_the_plain_clip_encoder(encoders):
    assert isinstance(encoders["torch"], ClipEncoder)


def test_sessions_use_physical_cores_and_one_inter_op_thread():
    options = session_options()
    assert options.intra_op_num_threads == physical_cores() >= 1
    assert options.inter_op_num_threads == 1


def test_a_saved_optimised_graph_gives_the_int8_embeddings_of_an_unoptimised_session(encoders):
    import onnxruntime as ort

    folder = encoders["onnx-int8"].folder
    shutil.rmtree(folder / "optimised", ignore_errors=True)  # whatever earlier tests saved: start from none
    first = OnnxEncoder(folder, int8=True)
    optimised_now = first.encode_texts(QUERIES)  # optimises the int8 text tower and saves the result
    assert Path(first._sessions[TEXT]._model_path) == folder / INT8[TEXT]
    saved = OnnxEncoder(folder, int8=True)
    from_saved = saved.encode_texts(QUERIES)
    assert Path(saved._sessions[TEXT]._model_path).parent.parent == folder / "optimised"  # not optimised again
    plain = session_options()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    unoptimised = OnnxEncoder(folder, int8=True)
    unoptimised._sessions[TEXT] = ort.InferenceSession(str(folder / INT8[TEXT]), plain,
                                                       providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(from_saved, optimised_now, atol=1e-6)
    np.testing.assert_allclose(from_saved, unoptimised.encode_texts(QUERIES), atol=2e-4)
    assert cosines(from_saved, unoptimised.encode_texts(QUERIES)).min() >= 0.9999


def test_load_encoder_opens_a_fresh_export_of_a_checkpoint_without_loading_torch_weights(tiny, tmp_path,
                                                                                         monkeypatch):
    checkpoint = tmp_path / "ckpt"
    tiny.model.save_pretrained(checkpoint)
    tiny.processor.save_pretrained(checkpoint)
    first = load_encoder(str(checkpoint), "onnx")  # loads the weights and exports into ckpt/onnx
    assert first.folder == checkpoint / "onnx" and first.fingerprint == tiny.fingerprint

    def no_weights(*args, **kwargs):
        raise AssertionError("the torch weights were loaded")

    monkeypatch.setattr("stylesearch.model.clip.load_model", no_weights)
    again = load_encoder(str(checkpoint), "onnx")
    np.testing.assert_array_equal(again.encode_texts(QUERIES), first.encode_texts(QUERIES))
    changed = copy.deepcopy(tiny)
    with torch.no_grad():
        changed.model.text_projection.weight.mul_(2.0)
    changed.model.save_pretrained(checkpoint)  # a new checkpoint in the same place
    with pytest.raises(AssertionError, match="torch weights were loaded"):
        load_encoder(str(checkpoint), "onnx")  # the export no longer matches: back to the full path


def one_shot_search(index: Path, *flags: str) -> dict:
    """A one-shot CLI search in a fresh Python: its exit code, its output and the heavy modules it imported."""
    import subprocess
    import sys

    args = ["search", "red shirt", "--index", str(index), *flags, "--mode", "clip", "--json", "-k", "5"]
    code = ("import json, sys\nfrom typer.testing import CliRunner\nfrom stylesearch.cli import app\n"
            f"r = CliRunner().invoke(app, {args!r})\n"
            "heavy = [m for m in ('torch', 'transformers', 'torchvision') if m in sys.modules]\n"
            "print(json.dumps({'code': r.exit_code, 'out': r.output, 'heavy': heavy}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_one_shot_onnx_search_never_imports_torch_or_transformers(tiny, processed_dir, tmp_path):
    from stylesearch.index.store import EmbeddingIndex
    from stylesearch.search.searcher import open_searcher

    checkpoint = tmp_path / "ckpt"
    tiny.model.save_pretrained(checkpoint)
    tiny.processor.save_pretrained(checkpoint)
    encoder = load_encoder(str(checkpoint), "onnx")  # exports once, with torch, as `stylesearch index` would
    EmbeddingIndex.build(processed_dir, encoder, tmp_path / "index", model_name=str(checkpoint), progress=False)
    got = one_shot_search(tmp_path / "index", "--backend", "onnx")
    assert got["code"] == 0 and got["heavy"] == [], got
    ids = [h["id"] for h in json.loads(got["out"])["hits"]]
    saved = sorted((checkpoint / "onnx" / "optimised").glob("text-*/model.onnx"))
    assert len(saved) == 1  # the first query saved ORT's optimised text graph
    made = saved[0].stat().st_mtime_ns
    second = one_shot_search(tmp_path / "index", "--backend", "onnx")
    assert second["code"] == 0 and second["heavy"] == [], second
    assert [h["id"] for h in json.loads(second["out"])["hits"]] == ids  # the saved graph answers the same
    assert saved[0].stat().st_mtime_ns == made  # loaded, not made again
    same = open_searcher(tmp_path / "index", encoder=load_encoder(str(checkpoint), "torch"))
    assert ids == [h.id for h in same.search("red shirt", k=5)]  # the same answer as torch gives


def test_auto_opens_the_export_the_index_was_built_with_and_torch_when_there_is_none(tiny, processed_dir, tmp_path):
    from stylesearch.index.store import EmbeddingIndex
    from stylesearch.search.searcher import open_searcher

    checkpoint = tmp_path / "ckpt"
    tiny.model.save_pretrained(checkpoint)
    tiny.processor.save_pretrained(checkpoint)
    assert isinstance(load_encoder(str(checkpoint), "auto"), ClipEncoder)  # no export: never made unasked
    assert not (checkpoint / "onnx").exists()
    int8 = load_encoder(str(checkpoint), "onnx-int8")  # as `stylesearch index --backend onnx-int8` does
    index, _ = EmbeddingIndex.build(processed_dir, int8, tmp_path / "index", model_name=str(checkpoint),
                                   progress=False)
    assert index.manifest["backend"] == "onnx-int8"
    load_encoder(str(checkpoint), "onnx")  # an fp32 export beside it too
    assert load_encoder(str(checkpoint), "auto").backend == "onnx"  # no preference: fp32, torch's own embeddings
    assert load_encoder(str(checkpoint), "auto", prefer="onnx-int8").backend == "onnx-int8"
    searcher = open_searcher(tmp_path / "index", backend="auto")
    assert searcher.encoder.encoder.backend == "onnx-int8"  # behind the query cache: the index's own runtime
    # The CLI's default is auto: a one-shot search over this index imports neither torch nor transformers.
    got = one_shot_search(tmp_path / "index")
    assert got["code"] == 0 and got["heavy"] == [], got
    assert [h["id"] for h in json.loads(got["out"])["hits"]] == [h.id for h in searcher.search("red shirt", k=5)]
