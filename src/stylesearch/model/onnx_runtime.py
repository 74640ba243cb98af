"""CLIP on ONNX Runtime without torch or transformers: `OnnxEncoder`, its sessions, the export's manifest.

A one-shot `stylesearch search --backend onnx` needs only this module, the tokenizer's `tokenizer.json`
(read by the Rust `tokenizers` library) and ORT: importing torch and transformers would cost seconds
before the first query. Image queries and index builds need CLIP's image preprocessing, which is
imported on first use. Exporting (which does need torch) lives in `model.onnx`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stylesearch.common.files import verified_sha256
from stylesearch.errors import StylesearchError
from stylesearch.model.encoder import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, FloatArray
from stylesearch.model.onnx_optimised import optimised_session

FORMAT_VERSION = 1
MANIFEST_KIND = "stylesearch.onnx"
TEXT, IMAGE, MANIFEST, PROCESSOR = "text.onnx", "image.onnx", "manifest.json", "processor"
INT8 = {TEXT: "text.int8.onnx", IMAGE: "image.int8.onnx"}


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("kind") == MANIFEST_KIND else None


def stale_reason(folder: Path, fingerprint: str, *, int8: bool = False) -> str | None:
    """Why `folder` cannot serve the weights `fingerprint` (None when it can)."""
    manifest = read_manifest(folder)
    if manifest is None:
        return "no export yet"
    if manifest.get("format_version") != FORMAT_VERSION:
        return f"format {manifest.get('format_version')} is not {FORMAT_VERSION}"
    if manifest.get("fingerprint") != fingerprint:
        return f"exported from weights {manifest.get('fingerprint')}, the checkpoint is now {fingerprint}"
    if not (Path(folder) / PROCESSOR / "tokenizer.json").is_file():
        return "no tokenizer.json (an export from before queries ran without transformers)"
    files = manifest.get("files", {})
    wanted = [TEXT, IMAGE, *(INT8.values() if int8 else ())]
    for name in wanted:
        if name not in files:
            return f"{name} not exported yet"
        if not (Path(folder) / name).is_file() or verified_sha256(Path(folder) / name) != files[name]:
            return f"{name} is missing or does not match its recorded sha256"
    return None





def physical_cores() -> int:
    """Cores this process may run on, counting each physical core once ($STYLESEARCH_THREADS overrides)."""
    if os.environ.get("STYLESEARCH_THREADS"):
        return max(1, int(os.environ["STYLESEARCH_THREADS"]))
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))
    cores: set[tuple[str, str]] = set()
    try:
        for cpu in allowed:
            topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
    except OSError:
        return max(1, len(allowed))
    return max(1, len(cores))


def session_options(threads: int | None = None, *, spin: bool = True) -> Any:
    """ORT options: `threads` intra-op threads (default: physical cores), one inter-op thread, full graph fusion.

    `spin` keeps idle pool threads busy-waiting for the next op: lower latency for a text query,
    but on a 2-core box it steals time from image-decoding workers, so image sessions turn it off.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


class OnnxEncoder:
    """The `Encoder` contract over ONNX Runtime sessions of an exported CLIP (fp32 or int8).

    Sessions are opened on first use, so a text-only searcher never loads the vision tower.
    `InferenceSession.run` is thread-safe; one encoder can serve concurrent requests.
    """

    def __init__(self, folder: Path, *, int8: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
                 threads: int | None = None, num_workers: int = DEFAULT_WORKERS):
        self.folder = Path(folder)
        manifest = read_manifest(self.folder)
        if manifest is None:
            raise StylesearchError(f"{self.folder} holds no ONNX export (no {MANIFEST}); run export_onnx first")
        self.manifest = manifest
        self.int8 = int8
        self.backend = "onnx-int8" if int8 else "onnx"
        self.dim = int(manifest["dim"])
        self.fingerprint = str(manifest["fingerprint"])
        self.name = str(manifest["model"])
        self.max_tokens = int(manifest["max_text_tokens"])
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.threads = threads or physical_cores()
        self._text = _fast_tokenizer(self.folder / PROCESSOR, self.max_tokens)
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _session(self, tower: str) -> Any:
        session = self._sessions.get(tower)
        if session is None:
            with self._lock:
                session = self._sessions.get(tower)
                if session is None:
                    path = self.folder / (INT8[tower] if self.int8 else tower)
                    # From ORT's saved optimised graph after the first run: a one-shot query skips ~0.3 s.
                    session = optimised_session(path, lambda: session_options(self.threads, spin=tower == TEXT))
                    self._sessions[tower] = session
        return session

    @cached_property
    def image_processor(self) -> Any:
        from transformers import CLIPImageProcessor  # only for images: a text query never pays for it

        return CLIPImageProcessor.from_pretrained(str(self.folder / PROCESSOR))

    @cached_property
    def preprocess(self) -> Any:
        from stylesearch.model.preprocess import ClipPreprocess

        return ClipPreprocess.from_processor(self.image_processor)

    def token_count(self, text: str) -> int:
        return len(self._text.counter.encode(text).ids)


    def encode_texts(self, texts: Sequence[str]) -> FloatArray:
        session = self._session(TEXT)
        out = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            # Pad to the longest item in the batch, not to 77: a query is a handful of tokens.
            encodings = self._text.encoder.encode_batch(batch)
            feed = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}
            out.append(_l2_normalise(session.run(None, feed)[0]))
        return np.concatenate(out)

    def encode_images(self, images: Sequence[Image.Image]) -> FloatArray:
        out = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(images), self.batch_size):
            out.append(self.encode_pixels(self.preprocess.batch(list(images[start : start + self.batch_size]))))
        return np.concatenate(out)

    def encode_pixels(self, pixels: Any) -> FloatArray:
        array = pixels.numpy() if hasattr(pixels, "numpy") else np.asarray(pixels)  # a torch tensor or an array
        feats = self._session(IMAGE).run(None, {"pixel_values": np.ascontiguousarray(array, dtype=np.float32)})[0]
        return _l2_normalise(feats)

    def encode_image_bytes(self, image_bytes_list: Sequence[bytes], *, where: Sequence[str] | None = None,
                           progress: Any = None) -> FloatArray:
        """Embed encoded images, decoding them in DataLoader workers while the model runs."""
        from stylesearch.model.preprocess import embed_image_bytes

        return embed_image_bytes(self, image_bytes_list, preprocess=self.preprocess, batch_size=self.batch_size,
                                 num_workers=self.num_workers, where=where, progress=progress)


def _l2_normalise(feats: np.ndarray) -> FloatArray:
    feats = np.asarray(feats, dtype=np.float32)
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


class _Tokenizers:
    """CLIP's tokenizer from `tokenizer.json`: one copy pads and truncates, one (made on first use) counts."""

    def __init__(self, encoder: Any, path: Path):
        self.encoder, self.path = encoder, path

    @cached_property
    def counter(self) -> Any:
        from tokenizers import Tokenizer

        counter = Tokenizer.from_file(str(self.path))
        counter.no_truncation()
        counter.no_padding()
        return counter


def _fast_tokenizer(folder: Path, max_tokens: int) -> _Tokenizers:
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise StylesearchError(f"{folder}: no tokenizer.json in this ONNX export; delete the export folder and it "
                               "is made again on the next run")
    settings = folder / "tokenizer_config.json"
    config = json.loads(settings.read_text()) if settings.is_file() else {}
    pad = str(config.get("pad_token") or "<|endoftext|>")
    encoder = Tokenizer.from_file(str(path))
    # Truncate as the model reads (BOS, 75 tokens, EOS); pad a batch to its longest item, not to 77.
    encoder.enable_truncation(max_length=max_tokens)
    encoder.enable_padding(pad_id=encoder.token_to_id(pad), pad_token=pad)
    return _Tokenizers(encoder, path)
