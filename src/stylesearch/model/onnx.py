"""CLIP on ONNX Runtime, fp32 or int8: the export, its cache, and `OnnxEncoder`.

`export_onnx(loaded, folder, int8=True)` exports both CLIP towers with `torch.onnx.export` (dynamic
batch, and dynamic sequence length so text pads to its longest item, not to 77), optionally
quantises their weights to int8 and caches the files; `OnnxEncoder(folder)` runs them with a
fingerprint that is the torch model's, so an index built with one backend is searchable with
another. `model.backends` chooses between this and torch.

Cache layout (one folder per set of weights):
  <model dir>/onnx/                                  for a local checkpoint directory
  $STYLESEARCH_CACHE/stylesearch/onnx/<fingerprint>/   for Hub names and presets
      text.onnx  image.onnx  [text.int8.onnx  image.int8.onnx]  processor/  manifest.json
      optimised/   ORT's optimised graph of each tower used so far, saved on first load (model.onnx_optimised)
The manifest records the weights fingerprint and each file's sha256; a folder whose fingerprint
differs from the model's (the checkpoint changed) or whose files fail their hash is rebuilt.

Threads: one intra-op pool per session of `physical_cores()` threads (hyper-threads share one
core's vector units, so they add contention, not speed), inter-op 1 (CLIP is one chain of ops;
parallel branches would only split the same cores). `STYLESEARCH_THREADS` overrides the count.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from stylesearch.common.files import atomic_dir, atomic_path, atomic_write_text, checkpoint_hash, sha256_file
from stylesearch.model.clip import LoadedModel, projected_features
from stylesearch.model.onnx_runtime import (
    FORMAT_VERSION,
    IMAGE,
    INT8,
    MANIFEST,
    MANIFEST_KIND,
    PROCESSOR,
    TEXT,
    OnnxEncoder,
    physical_cores,
    read_manifest,
    session_options,
    stale_reason,
)
from stylesearch.model.presets import is_preset

# The runtime half lives in onnx_runtime (no torch); these names are re-exported for callers of this module.
__all__ = ["IMAGE", "INT8", "MANIFEST", "TEXT", "OnnxEncoder", "cache_root", "export_onnx", "onnx_dir",
           "physical_cores", "quantise", "read_manifest", "session_options", "stale_reason"]

log = logging.getLogger(__name__)

OPSET = 18  # what torch's dynamo exporter emits natively; ORT >= 1.14 runs it
# Quantise only the matrix multiplies: they are nearly all of CLIP's time. The convolutions (the ViT
# patch embedding, or the few layers of a conv stem, model/stem.py) stay fp32: ORT's ConvInteger
# kernels are less optimised, and they are a small share of an image's work.
INT8_OPS = ("MatMul", "Gemm")


class _TextTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return projected_features(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


class _ImageTower(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return projected_features(self.model.get_image_features(pixel_values=pixel_values))


# --- where the files live, and whether they are fresh ----------------------------------------------


def cache_root() -> Path:
    """$STYLESEARCH_CACHE (or $XDG_CACHE_HOME, or ~/.cache) / stylesearch / onnx, like the tokenizer cache."""
    base = os.environ.get("STYLESEARCH_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stylesearch" / "onnx"


def onnx_dir(loaded: LoadedModel, fingerprint: str | None = None) -> Path:
    """`<model dir>/onnx` for a local checkpoint; a per-fingerprint folder in the user cache otherwise."""
    path = Path(loaded.name)
    if not is_preset(loaded.name) and path.is_dir() and (path / "config.json").is_file():
        return path / "onnx"
    return cache_root() / (fingerprint or loaded.fingerprint)


# --- export and quantise ---------------------------------------------------------------------------


def export_onnx(loaded: LoadedModel, folder: Path | None = None, *, int8: bool = False,
                fingerprint: str | None = None) -> Path:
    """Make sure `folder` holds current ONNX exports of both towers (and int8 ones if asked); return it.

    Fresh files are reused; stale or corrupt ones are rebuilt in a temp folder and swapped in whole.
    Adding the int8 variant to a fresh fp32 export quantises in place without re-exporting.
    """
    fingerprint = fingerprint or loaded.fingerprint
    folder = Path(folder) if folder is not None else onnx_dir(loaded, fingerprint)
    reason = stale_reason(folder, fingerprint, int8=int8)
    if reason is None:
        return folder
    fp32_fresh = stale_reason(folder, fingerprint, int8=False) is None
    if int8 and fp32_fresh:
        log.info("quantising the ONNX export in %s to int8", folder)
        manifest = read_manifest(folder) or {}
        for name, quantised in INT8.items():
            with atomic_path(folder / quantised) as tmp:
                quantise(folder / name, tmp)
            manifest["files"][quantised] = sha256_file(folder / quantised)
        atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2))
        return folder
    log.info("exporting %s to ONNX in %s (%s)", loaded.name, folder, reason)
    with atomic_dir(folder) as tmp:
        _export_towers(loaded, tmp)
        names = [TEXT, IMAGE]
        if int8:
            for name, quantised in INT8.items():
                quantise(tmp / name, tmp / quantised)
                names.append(quantised)
        loaded.processor.save_pretrained(str(tmp / PROCESSOR))
        manifest = _manifest(loaded, fingerprint, {name: sha256_file(tmp / name) for name in names})
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2))
    return folder


def _export_towers(loaded: LoadedModel, out: Path) -> None:
    from torch.export import Dim

    model = loaded.model.eval()
    device = next(model.parameters()).device
    tokens = loaded.processor.tokenizer(["a red shirt", "navy blue striped cotton tshirts for men"],
                                        padding=True, return_tensors="pt").to(device)
    batch = Dim("batch", min=1, max=4096)
    seq = Dim("seq", min=2, max=int(model.config.text_config.max_position_embeddings))
    size = int(model.config.vision_config.image_size)
    pixels = torch.zeros((2, 3, size, size), device=device)  # batch 2: size 1 would be specialised away
    with torch.no_grad(), warnings.catch_warnings():
        # Both towers share the batch Dim, and the exporter warns that it keeps only one of the names.
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
        torch.onnx.export(_TextTower(model).eval(), (tokens["input_ids"], tokens["attention_mask"]), str(out / TEXT),
                          input_names=["input_ids", "attention_mask"], output_names=["text_embeds"],
                          dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
                          opset_version=OPSET, dynamo=True, external_data=False, verbose=False)
        torch.onnx.export(_ImageTower(model).eval(), (pixels,), str(out / IMAGE), input_names=["pixel_values"],
                          output_names=["image_embeds"], dynamic_shapes={"pixel_values": {0: batch}},
                          opset_version=OPSET, dynamo=True, external_data=False, verbose=False)


def quantise(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of `source`'s weights (activations quantised per batch at run time)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Signed int8 weights with uint8 activations use VNNI where the CPU has it; on AVX2-only CPUs the
    # same kernels can saturate, which the parity tests would catch as a cosine drop.
    logging.disable(logging.WARNING)  # the quantiser logs every tensor it skips, on the root logger
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=list(INT8_OPS))
    finally:
        logging.disable(logging.NOTSET)


def _manifest(loaded: LoadedModel, fingerprint: str, files: dict[str, str]) -> dict[str, Any]:
    import onnx
    import onnxruntime

    config = loaded.model.config
    return {
        "kind": MANIFEST_KIND,
        "format_version": FORMAT_VERSION,
        "model": loaded.name,
        "fingerprint": fingerprint,
        "checkpoint_sha256": checkpoint_hash(loaded.name),
        "dim": int(config.projection_dim),
        "image_size": int(config.vision_config.image_size),
        "max_text_tokens": int(config.text_config.max_position_embeddings),
        "exporter": f"torch.onnx.export(dynamo=True, opset={OPSET})",
        "int8": {"method": "onnxruntime.quantization.quantize_dynamic", "weights": "QInt8 per channel",
                 "ops": list(INT8_OPS)},
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    }
