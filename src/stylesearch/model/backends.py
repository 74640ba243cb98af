"""Inference backends behind the `Encoder` contract, registered in this one file: torch, onnx, onnx-int8.

Adding a runtime is one `Backend` subclass here (how to make its encoder from a loaded model, and
optionally how to open a cached export without loading the torch weights) plus its tests; `--backend`
on `index`, `search` and `serve`, `open_searcher` and Ray read this registry.

`load_encoder(name_or_path, backend)` is the CLI's entry point: for a local checkpoint with a fresh
ONNX export it opens the export without loading the torch weights at all (~600 MB and seconds saved
for ViT-B/32 in a server). `auto`, the default of `search` and `serve`, takes a fresh export when the
checkpoint has one (the index's own backend first) and torch otherwise: never an export a user did
not ask for, and never torch's start-up when an export is there.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from stylesearch.common.files import checkpoint_hash
from stylesearch.errors import StylesearchError
from stylesearch.model.encoder import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, Encoder
from stylesearch.model.onnx_runtime import OnnxEncoder, read_manifest, stale_reason

if TYPE_CHECKING:
    from stylesearch.model.loaded import LoadedModel

log = logging.getLogger(__name__)


class Backend:
    """One runtime for CLIP's two towers."""

    name: ClassVar[str]
    about: ClassVar[str]

    def make(self, loaded: LoadedModel, *, cache_dir: Path | None, batch_size: int, threads: int | None,
             num_workers: int) -> Encoder:
        raise NotImplementedError

    def open_export(self, checkpoint: Path, *, batch_size: int, threads: int | None,
                    num_workers: int) -> Encoder | None:
        """An encoder straight from a fresh export beside `checkpoint`, or None (then the model is loaded)."""
        return None


class Torch(Backend):
    name, about = "torch", "PyTorch, fp32 (bf16 or fp16 autocast where the device has it)"

    def make(self, loaded: LoadedModel, *, cache_dir: Path | None, batch_size: int, threads: int | None,
             num_workers: int) -> Encoder:
        from stylesearch.model.clip import ClipEncoder  # torch: only when this backend is chosen

        return ClipEncoder(loaded, batch_size=batch_size)


class Onnx(Backend):
    name, about = "onnx", "ONNX Runtime, fp32: the torch model's embeddings, faster on a CPU"
    int8: ClassVar[bool] = False

    def make(self, loaded: LoadedModel, *, cache_dir: Path | None, batch_size: int, threads: int | None,
             num_workers: int) -> Encoder:
        from stylesearch.model.onnx import cache_root, export_onnx, onnx_dir  # exporting needs torch

        fingerprint = loaded.fingerprint  # hashes every weight once; pass it down instead of recomputing
        folder = Path(cache_dir) if cache_dir is not None else onnx_dir(loaded, fingerprint)
        try:
            export_onnx(loaded, folder, int8=self.int8, fingerprint=fingerprint)
        except PermissionError:
            if cache_dir is not None:
                raise
            folder = cache_root() / fingerprint
            log.warning("cannot write next to the checkpoint; caching the ONNX export in %s", folder)
            export_onnx(loaded, folder, int8=self.int8, fingerprint=fingerprint)
        return OnnxEncoder(folder, int8=self.int8, batch_size=batch_size, threads=threads, num_workers=num_workers)

    def open_export(self, checkpoint: Path, *, batch_size: int, threads: int | None,
                    num_workers: int) -> Encoder | None:
        if not checkpoint.is_dir():
            return None
        folder = checkpoint / "onnx"
        manifest = read_manifest(folder)
        weights_sha = checkpoint_hash(checkpoint)
        if manifest and weights_sha and manifest.get("checkpoint_sha256") == weights_sha and stale_reason(
                folder, str(manifest["fingerprint"]), int8=self.int8) is None:
            return OnnxEncoder(folder, int8=self.int8, batch_size=batch_size, threads=threads,
                               num_workers=num_workers)
        return None


class OnnxInt8(Onnx):
    name, about, int8 = "onnx-int8", "ONNX Runtime with int8 weights: the fastest on a CPU", True


REGISTRY: dict[str, Backend] = {b.name: b for b in (Torch(), Onnx(), OnnxInt8())}
BACKENDS: tuple[str, ...] = tuple(REGISTRY)
AUTO = "auto"  # a fresh export beside the checkpoint if there is one, else torch (load_encoder)
# Which export `auto` opens when the index does not say: fp32 first, whose embeddings equal torch's
# (cosine ≥ 0.9999), then int8 (recall@10 within a point of torch's on a trained model).
AUTO_ORDER: tuple[str, ...] = ("onnx", "onnx-int8")


def backend_of(name: str) -> Backend:
    """The registered backend called `name`, or a `StylesearchError` naming the choices."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise StylesearchError(f"unknown backend {name!r}; choose one of {', '.join((AUTO, *BACKENDS))}") from None


def make_encoder(loaded: LoadedModel, backend: str = "torch", *, cache_dir: Path | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, threads: int | None = None,
                 num_workers: int = DEFAULT_WORKERS) -> Encoder:
    """An `Encoder` for `loaded` on `backend` ("torch", "onnx" or "onnx-int8"); all share one fingerprint.

    ONNX exports are cached in `cache_dir` (default: `onnx_dir(loaded)`) and rebuilt when stale.
    When a checkpoint directory is read-only the export goes to the user cache instead.
    """
    return backend_of(backend).make(loaded, cache_dir=cache_dir, batch_size=batch_size, threads=threads,
                                    num_workers=num_workers)


def load_encoder(name_or_path: str, backend: str = "torch", *, batch_size: int = DEFAULT_BATCH_SIZE,
                 threads: int | None = None, num_workers: int = DEFAULT_WORKERS, prefer: str | None = None) -> Encoder:
    """Load a checkpoint on `backend`, for the CLI's `--backend` (index, search, serve).

    A local checkpoint directory with a fresh export opens straight from it; anything else (a Hub
    name, a preset, a stale or missing export) loads the model and goes through `make_encoder`,
    which exports when needed. `backend="auto"` opens the first fresh export of `prefer` (the
    backend an index was built with), then `AUTO_ORDER`, and loads torch when there is none.
    """
    if backend == AUTO:
        order = dict.fromkeys([prefer, *AUTO_ORDER] if prefer in AUTO_ORDER else AUTO_ORDER)
        for name in order:
            opened = REGISTRY[str(name)].open_export(Path(name_or_path), batch_size=batch_size, threads=threads,
                                                     num_workers=num_workers)
            if opened is not None:
                return opened
        backend = Torch.name
    chosen = backend_of(backend)
    # A fresh ONNX export opens without torch or transformers: a one-shot query starts in a second.
    opened = chosen.open_export(Path(name_or_path), batch_size=batch_size, threads=threads, num_workers=num_workers)
    if opened is not None:
        return opened
    from stylesearch.model.clip import load_model

    return chosen.make(load_model(name_or_path), cache_dir=None, batch_size=batch_size, threads=threads,
                       num_workers=num_workers)
