"""A training run's history: steps and epochs as JSON, and the curves as a PNG beside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stylesearch.common.files import atomic_write_bytes, atomic_write_text


def write_history(history: dict[str, list[dict[str, Any]]], out_dir: Path) -> None:
    """`out_dir/history.json` and `out_dir/history.png`, each written atomically."""
    atomic_write_text(out_dir / "history.json", json.dumps(history, indent=1))
    atomic_write_bytes(out_dir / "history.png", history_png(history))


def history_png(history: dict[str, list[dict[str, Any]]]) -> bytes:
    """Loss, validation recall and learning rate side by side, as PNG bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = history.get("steps", [])
    epochs = history.get("epochs", [])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    if steps:
        axes[0].plot([s["step"] for s in steps], [s["loss"] for s in steps], lw=1, label="train loss")
    if epochs:
        axes[0].plot([e["step"] for e in epochs], [e["val_loss"] for e in epochs], "o-", label="val loss")
        for k in ("R@1", "R@5", "R@10"):
            axes[1].plot([e["epoch"] for e in epochs], [e[k] for e in epochs], "o-", label=f"val {k}")
    if steps:
        axes[2].plot([s["step"] for s in steps], [s["lr"] for s in steps])
    for ax, title in zip(axes, ("loss", "validation recall (title->image)", "learning rate"), strict=True):
        ax.set_title(title)
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    axes[0].set_xlabel("step")
    axes[1].set_xlabel("epoch")
    axes[2].set_xlabel("step")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    plt.close(fig)
    return buffer.getvalue()
