"""Load CLIP checkpoints (Hub name, local directory, or the `tiny` preset) behind one small contract.

Everything after training depends only on `Encoder`: `encode_texts` and `encode_images` return
L2-normalised float32 rows. Tests hand the later stages a fake encoder with known outputs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor
from transformers.utils import logging as hf_logging

from stylesearch.config import DEFAULT_MODEL, TinyPreset
from stylesearch.errors import ModelUnavailableError
from stylesearch.model.checkpoint import verify_checkpoint
from stylesearch.model.encoder import FloatArray
from stylesearch.model.loaded import LoadedModel
from stylesearch.model.presets import PRESETS, is_preset
from stylesearch.model.stem import install_stem, stem_of
from stylesearch.model.tokenizer import clip_tokenizer

# transformers draws a progress bar for every load and save; ours draw the ones that matter, and
# `--json` output must stay clean.
hf_logging.disable_progress_bar()

TINY = "tiny"
# CLIP's own normalisation constants; the tiny preset uses them so it is preprocessed like the real one.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def tiny_model(preset: TinyPreset = TinyPreset(), seed: int = 0, name: str = TINY) -> LoadedModel:
    """A random-init small CLIP of `preset`'s shape with the real BPE tokenizer (`tiny` by default)."""
    text = {
        "hidden_size": preset.hidden,
        "intermediate_size": preset.hidden * preset.mlp_ratio,
        "num_hidden_layers": preset.text_layers or preset.layers,
        "num_attention_heads": preset.heads,
        "max_position_embeddings": preset.max_text_tokens,
        "vocab_size": 49408,
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 49407,
    }
    vision = {
        "hidden_size": preset.hidden,
        "intermediate_size": preset.hidden * preset.mlp_ratio,
        "num_hidden_layers": preset.layers,
        "num_attention_heads": preset.heads,
        "image_size": preset.image_size,
        "patch_size": preset.patch_size,
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=preset.projection_dim)
    torch.manual_seed(seed)
    model = install_stem(CLIPModel(config), preset.stem).eval()
    return LoadedModel(model=model, processor=tiny_processor(preset), name=name)


def tiny_processor(preset: TinyPreset = TinyPreset()) -> CLIPProcessor:
    square = {"height": preset.image_size, "width": preset.image_size}
    if preset.squash:  # the whole photo resized to the square (see TinyPreset.squash)
        image = CLIPImageProcessor(size=square, do_center_crop=False, crop_size=square,
                                   image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    else:
        image = CLIPImageProcessor(size={"shortest_edge": preset.image_size}, crop_size=square,
                                   image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    return CLIPProcessor(image_processor=image, tokenizer=clip_tokenizer())


def vit_b32_random(seed: int = 0) -> LoadedModel:
    """The real ViT-B/32 CLIP architecture with random weights: speed figures need no trained values."""
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig()).eval()  # CLIPConfig's defaults are ViT-B/32's sizes
    return LoadedModel(model=model, processor=tiny_processor(TinyPreset(image_size=224, squash=False)),
                       name="vit-b-32-random")


def load_model(name_or_path: str = DEFAULT_MODEL, *, seed: int = 0) -> LoadedModel:
    """Load a CLIP checkpoint by Hub name or local directory, or a random-init preset (`tiny`, `small`).

    >>> load_model("tiny").model.config.projection_dim
    64
    """
    if is_preset(name_or_path):
        return tiny_model(PRESETS[name_or_path].shape, seed=seed, name=name_or_path)
    if name_or_path == "vit-b-32-random":
        return vit_b32_random(seed=seed)
    path = Path(name_or_path)
    local = path.exists()
    if local and not (path / "config.json").is_file():
        raise ModelUnavailableError(
            f"{path} is not a model directory (no config.json); pass a directory written by "
            "`stylesearch train` or `save_pretrained`, a Hub name, or `tiny`"
        )
    if local:
        # A local directory is a file anyone could have handed us: check it against the hashes in its
        # checkpoint.json, and never unpickle weights (a pickle can run code; safetensors cannot).
        verify_checkpoint(path)
        if not any(path.glob("*.safetensors")):
            pickled = sorted(p.name for p in path.glob("*.bin")) or ["no weights file"]
            raise ModelUnavailableError(
                f"{path}: no *.safetensors weights ({', '.join(pickled)}); stylesearch does not unpickle weights. "
                "Convert a trusted checkpoint with `CLIPModel.from_pretrained(dir).save_pretrained(dir)`."
            )
    # Offline, the Hub client retries for ~25 s before giving up; look once and fail at once instead.
    offline = not local and not hub_reachable()
    try:
        config = CLIPConfig.from_pretrained(str(path)) if local else None
        if config is not None and stem_of(config) != "patch":
            model = _load_with_stem(path, config)
        else:
            model = CLIPModel.from_pretrained(
                name_or_path, use_safetensors=_has_safetensors(path) if local else None, local_files_only=offline
            )
        processor = CLIPProcessor.from_pretrained(name_or_path, local_files_only=offline)
    except (OSError, ValueError) as err:
        where = "this directory" if local else "the local Hugging Face cache, and the Hub could not be reached"
        raise ModelUnavailableError(
            f"could not load CLIP weights '{name_or_path}': not found in {where} ({_first_line(err)}). "
            "Pass --model with a local directory saved by `stylesearch train` or `save_pretrained` "
            "(e.g. a copy of openai/clip-vit-base-patch32), or a random-init preset to train from scratch "
            f"offline: --model small (or {', '.join(p for p in PRESETS if p != 'small')})."
        ) from err
    return LoadedModel(model=model.eval(), processor=processor, name=str(name_or_path))


def _load_with_stem(path: Path, config: CLIPConfig) -> CLIPModel:
    # from_pretrained would build the stock patch embedding and drop the stem's weights with a warning;
    # build the recorded stem first, then load every tensor strictly.
    from safetensors.torch import load_file

    model = install_stem(CLIPModel(config), stem_of(config))
    state: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(file)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # position_ids is a buffer transformers rebuilds; anything else missing means a broken checkpoint.
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(f"weights do not match the recorded model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return model


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers at all (HF_HUB_OFFLINE=1 means no)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _has_safetensors(path: Path) -> bool | None:
    # Never unpickle a local pytorch_model.bin silently: require safetensors when it is there.
    return True if any(path.glob("*.safetensors")) else None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def projected_features(output: object) -> torch.Tensor:
    # transformers 5 returns an output object whose pooler_output is the projected embedding.
    return output if isinstance(output, torch.Tensor) else output.pooler_output  # type: ignore[attr-defined]


class ClipEncoder:
    """The `Encoder` contract over a Hugging Face CLIP model, batched and without gradients."""

    def __init__(self, loaded: LoadedModel, *, batch_size: int = 64, device: torch.device | None = None):
        self.loaded = loaded
        self.device = device or default_device()
        self.model = loaded.model.to(self.device).eval()
        self.tokenizer = loaded.processor.tokenizer
        self.image_processor = loaded.processor.image_processor
        self.batch_size = batch_size
        self.dim = int(loaded.model.config.projection_dim)
        self.max_tokens = int(loaded.model.config.text_config.max_position_embeddings)
        self.fingerprint = loaded.fingerprint
        self.name = loaded.name

    def token_count(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=False)["input_ids"])

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> FloatArray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            # Pad to the longest item in the batch, not to 77: most queries are a few tokens.
            tokens = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_tokens,
                                    return_tensors="pt").to(self.device)
            feats = projected_features(self.model.get_text_features(**tokens))
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy())
        return _stack(out, self.dim)

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Image.Image]) -> FloatArray:
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = [im.convert("RGB") for im in images[start : start + self.batch_size]]
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            out.append(self.encode_pixels(pixels))
        return _stack(out, self.dim)

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> FloatArray:
        feats = projected_features(self.model.get_image_features(pixel_values=pixels.to(self.device)))
        return torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy()


def _stack(parts: list[FloatArray], dim: int) -> FloatArray:
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)


def load_encoder(name_or_path: str = DEFAULT_MODEL, *, batch_size: int = 64) -> ClipEncoder:
    """Load a model and wrap it as an `Encoder`."""
    torch.set_num_threads(int(os.environ.get("STYLESEARCH_THREADS", torch.get_num_threads())))
    return ClipEncoder(load_model(name_or_path), batch_size=batch_size)
