"""WiSE-FT: a weight-space mix of the base and the fine-tuned model (Wortsman et al., 2022).

theta(alpha) = (1 - alpha) * theta_base + alpha * theta_fine_tuned. alpha=1 is the fine-tuned model,
alpha=0 the base; points between often keep most of the in-domain gain while forgetting less of
what the base knew. The result is an ordinary checkpoint directory every stage can load.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from stylesearch.config import TrainConfig, from_dict
from stylesearch.errors import ManifestMismatchError, StylesearchError
from stylesearch.model.checkpoint import save_checkpoint, verify_checkpoint
from stylesearch.model.clip import LoadedModel, load_model


def interpolate(base: LoadedModel, fine_tuned: LoadedModel, alpha: float) -> LoadedModel:
    """A new model whose floating-point weights are (1 - alpha) * base + alpha * fine_tuned.

    Integer buffers (position ids) are copied from the fine-tuned model. The two models must have
    the same architecture: the same parameter names and shapes.
    """
    if not 0.0 <= alpha <= 1.0:
        raise StylesearchError(f"alpha {alpha} is outside [0, 1]: 0 is the base model, 1 the fine-tuned one")
    base_state, tuned_state = base.model.state_dict(), fine_tuned.model.state_dict()
    if base_state.keys() != tuned_state.keys():
        missing = sorted(base_state.keys() ^ tuned_state.keys())[:3]
        raise ManifestMismatchError(f"the base and fine-tuned models differ in architecture (e.g. "
                                    f"{', '.join(missing)}); WiSE-FT needs the checkpoint the fine-tune started from")
    mixed = {}
    for name, tuned in tuned_state.items():
        start = base_state[name]
        if start.shape != tuned.shape:
            raise ManifestMismatchError(f"{name}: shape {tuple(start.shape)} in the base but {tuple(tuned.shape)} "
                                        "in the fine-tuned model; WiSE-FT needs the same architecture")
        if tuned.is_floating_point():
            mixed[name] = (1.0 - alpha) * start.to(tuned.dtype) + alpha * tuned
        else:
            mixed[name] = tuned.clone()
    model = copy.deepcopy(fine_tuned.model)
    model.load_state_dict(mixed)
    return LoadedModel(model=model.eval(), processor=fine_tuned.processor,
                       name=f"wise-ft({alpha:g}, {base.name}, {fine_tuned.name})")


def base_of(fine_tuned: str | Path) -> str:
    """The base model a checkpoint was trained from, as its checkpoint.json or train_config.json names it."""
    path = Path(fine_tuned)
    manifest = verify_checkpoint(path) if path.is_dir() else {}
    if manifest.get("base_model"):
        return str(manifest["base_model"])
    config = path / "train_config.json"
    if config.is_file():
        return str(json.loads(config.read_text()).get("base_model", ""))
    raise StylesearchError(f"{path}: no checkpoint.json or train_config.json names its base model; pass --base")


def load_base(fine_tuned: str | Path, base: str | None = None) -> tuple[str, LoadedModel]:
    """(name, model) of the base a fine-tune started from; a `tiny` base is rebuilt with the run's seed."""
    cfg_path = Path(fine_tuned) / "train_config.json"
    seed = int(json.loads(cfg_path.read_text()).get("seed", 0)) if cfg_path.is_file() else 0
    name = base or base_of(fine_tuned)
    return name, load_model(name, seed=seed)


def merge_checkpoints(fine_tuned: str | Path, out: Path, alpha: float, base: str | None = None,
                      seed: int | None = None) -> LoadedModel:
    """Write the WiSE-FT mix of `fine_tuned` and its base (or `base`) to `out` as a normal checkpoint."""
    fine_tuned = Path(fine_tuned)
    cfg_path = fine_tuned / "train_config.json"
    cfg = from_dict(TrainConfig, json.loads(cfg_path.read_text())) if cfg_path.is_file() else TrainConfig()
    if seed is None:
        base, base_model = load_base(fine_tuned, base)
    else:
        base = base or base_of(fine_tuned)
        base_model = load_model(base, seed=seed)  # a `tiny` base is only the same model again with its seed
    merged = interpolate(base_model, load_model(str(fine_tuned)), alpha)
    save_checkpoint(merged, Path(out), cfg, info={"wise_ft": {"alpha": alpha, "base": base,
                                                              "fine_tuned": str(fine_tuned)}})
    return merged
