"""Random-init CLIP presets: each names a shape and the training recipe that suits it.

A preset is a model you train from scratch, so it needs a from-scratch recipe: a learning rate
about a hundred times the fine-tuning one, a larger batch, little or no augmentation, the pixel cache.
`train_config("small", lr=1e-3)` is the preset's recipe with the caller's explicit choices on top.

    >>> train_config("small").lr > 100 * TrainConfig().lr
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from stylesearch.config import TinyPreset, TrainConfig
from stylesearch.errors import StylesearchError


@dataclass(frozen=True)
class Preset:
    """A random-init model shape with the `TrainConfig` fields its recipe sets."""

    shape: TinyPreset
    recipe: dict[str, Any] = field(default_factory=dict)
    about: str = ""


PRESETS: dict[str, Preset] = {
    # Seconds per epoch: for tests and the offline demo, not for quality.
    "tiny": Preset(
        shape=TinyPreset(),
        recipe={"lr": 1e-3, "weight_decay": 0.1, "batch_size": 64, "warmup_steps": 100, "epochs": 30,
                "patience": 3, "pixel_cache": True, "augment": "crop-flip", "text_views": "views"},
        about="2 layers x 64 wide, 64 px: seconds per epoch, for tests and the offline demo",
    ),
    # Chosen by benchmarks/train_budget.py on the shared 34k catalogue, one core, 25 minutes
    # (docs/pipeline.md has the table of shapes and recipes tried, and what lost).
    "small": Preset(
        # 16 px patches (a 4x4 grid at 64 px) buy a 256-wide model at the speed of a 128-wide one with
        # 8 px patches, and it learned more per minute: title R@10 0.287 against 0.211 in 12 minutes.
        # A convolutional stem in place of the linear patchify (0.460 against 0.400 in 12 minutes), and a
        # 2-layer text tower for titles of a dozen tokens (0.387 against 0.331, a loaded machine).
        shape=TinyPreset(hidden=256, layers=4, heads=4, projection_dim=256, image_size=64, patch_size=16,
                         max_text_tokens=32, squash=True, stem="conv", text_layers=2),
        # The schedule anneals over the wall-clock budget (25 minutes unless --max-minutes says otherwise), so
        # the epoch count is only a ceiling and early stopping is off: validation recall climbs until the end.
        # Titles drawn half the time (not 1 in 6): title R@10 0.604 against 0.583 in 12 minutes, type P@1 equal;
        # 0.8 gained nothing more and lost type P@1 (0.511). No augmentation at all: a mirror alone beat the
        # mild crop + mirror (0.633 against 0.591 side by side in 12 minutes), and no mirror beat the mirror
        # (0.637 against 0.630): at 7 to 14 epochs the model is short of steps, not of data. Batch 512 at lr 1.4e-3
        # lost (0.548 against 0.600 in 12 minutes, side by side): half the steps, no gain per sample.
        recipe={"lr": 1e-3, "weight_decay": 0.1, "batch_size": 256, "warmup_steps": 100, "epochs": 100,
                "max_minutes": 25.0, "patience": 100, "pixel_cache": True, "bf16": True, "augment": "none",
                "text_views": "views", "title_share": 0.5, "val_max_items": 1000},
        about="conv stem, 4 vision + 2 text layers, 256 wide, 64 px: the best title recall found in 25 CPU minutes",
    ),
}

# Above this a random-init model barely moves in a CPU budget: 1e-4 is 20x the fine-tuning default.
MIN_FROM_SCRATCH_LR = 1e-4


def is_preset(name: str) -> bool:
    return name in PRESETS


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise StylesearchError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None


def train_config(model: str, **explicit: Any) -> TrainConfig:
    """The `TrainConfig` for `model`: defaults, then the preset's recipe, then `explicit` (None = not given)."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(explicit) - known)
    if unknown:
        raise StylesearchError(f"unknown training settings: {', '.join(unknown)}")
    cfg = TrainConfig(base_model=model)
    if is_preset(model):
        cfg = replace(cfg, **PRESETS[model].recipe)
    return replace(cfg, **{k: v for k, v in explicit.items() if v is not None})


def recipe_warning(cfg: TrainConfig) -> str | None:
    """One line when a random-init preset would train at a fine-tuning learning rate, else None."""
    if not is_preset(cfg.base_model) or cfg.lr >= MIN_FROM_SCRATCH_LR:
        return None
    suggested = PRESETS[cfg.base_model].recipe.get("lr", 1e-3)
    return (f"--model {cfg.base_model} starts from random weights, and lr {cfg.lr:g} is a fine-tuning rate: it "
            f"will learn almost nothing. Leave --lr out to use the preset's {suggested:g}.")
