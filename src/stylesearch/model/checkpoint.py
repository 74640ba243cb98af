"""Checkpoints as standard Hugging Face model directories, written atomically and verified on load.

A checkpoint directory holds what `save_pretrained` writes (model.safetensors, config.json, the
processor files) plus `train_config.json`, `checkpoint.json` (hashes, metrics, step) and, for
`last`, `training_state.pt` (optimizer and step state for --resume, loaded with weights_only=True).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from stylesearch.common.files import atomic_dir, atomic_write_text, seal_broken, sealed, sha256_file, verified_sha256
from stylesearch.config import TrainConfig, to_dict
from stylesearch.errors import IntegrityError, ResumeMismatchError
from stylesearch.model.loaded import LoadedModel, model_fingerprint

STATE_FILE = "training_state.pt"
MANIFEST = "checkpoint.json"


def save_checkpoint(
    loaded: LoadedModel,
    path: Path,
    cfg: TrainConfig,
    *,
    info: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> None:
    """Write a loadable checkpoint to `path` in one atomic swap."""
    with atomic_dir(Path(path)) as tmp:
        loaded.model.save_pretrained(tmp, safe_serialization=True)
        loaded.processor.save_pretrained(tmp)
        atomic_write_text(tmp / "train_config.json", json.dumps(to_dict(cfg), indent=2))
        if state is not None:
            torch.save(state, tmp / STATE_FILE)
        hashes = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {
            "kind": "stylesearch.checkpoint",
            "base_model": cfg.base_model,
            "fingerprint": model_fingerprint(loaded.model),
            "files": hashes,
            **info,
        }
        # Through JSON first, so the seal is computed over exactly what a reader will load.
        manifest = json.loads(json.dumps(manifest, default=str))
        atomic_write_text(tmp / MANIFEST, json.dumps(sealed(manifest), indent=2))


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """Check every file against the hashes in checkpoint.json; raise IntegrityError naming the bad one."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        return {}  # a plain save_pretrained directory: nothing recorded to check against
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise IntegrityError(f"{manifest_path}: corrupt ({err}); the checkpoint cannot be trusted") from err
    if seal_broken(manifest):
        raise IntegrityError(f"{manifest_path}: edited after it was written (its own hash does not match); "
                             "the checkpoint cannot be trusted")
    for name, expected in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise IntegrityError(f"{path}: {name} is missing; the checkpoint is incomplete")
        if verified_sha256(file) != expected:
            raise IntegrityError(f"{file}: content does not match checkpoint.json (tampered or truncated)")
    return manifest


def load_training_state(path: Path) -> dict[str, Any]:
    """The optimizer/step state saved with a `last` checkpoint, without unpickling arbitrary objects."""
    verify_checkpoint(path)
    file = Path(path) / STATE_FILE
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:  # what torch raises for non-tensor pickles
        raise IntegrityError(f"{file}: holds more than tensors and plain values ({str(err).splitlines()[0]}); "
                             "refusing to unpickle it. Resume from a checkpoint you wrote yourself.") from err


# What a run's batches, texts and pixels are made of: resuming with another value would not continue the
# same run. (epochs, max_minutes, patience and the like may change on --resume.)
RESUME_MUST_MATCH = ("sampler", "text_views", "title_share", "batch_size", "seed", "hue_jitter", "augment",
                     "freeze_vision_layers", "freeze_text_layers", "loss")


def check_resumable(cfg: TrainConfig, last: Path) -> None:
    """Refuse to --resume a run with settings that would change what it trains on, naming the flags to pass."""
    saved_path = Path(last) / "train_config.json"
    if not saved_path.is_file():
        return
    saved = json.loads(saved_path.read_text())
    ours = to_dict(cfg)
    differ = [name for name in RESUME_MUST_MATCH if name in saved and saved[name] != ours.get(name)]
    if differ:
        flags = " ".join(_flag(name, saved[name]) for name in differ)
        was = ", ".join(f"{n}={saved[n]!r}" for n in differ)
        now = ", ".join(f"{n}={ours.get(n)!r}" for n in differ)
        raise ResumeMismatchError(f"{last.parent} was started with {was}, not {now}; to resume it, pass {flags}")


def _flag(name: str, value: object) -> str:
    option = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{option}" if value else f"--no-{option}"
    return f"--{option} {value}"
