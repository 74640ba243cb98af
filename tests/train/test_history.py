"""A run's history is written as JSON and as a readable plot, and an empty history still draws."""

from __future__ import annotations

import json

from PIL import Image

from stylesearch.train.history import write_history

HISTORY = {"steps": [{"step": i, "epoch": 0, "loss": 3.0 - 0.1 * i, "lr": 1e-3} for i in range(1, 11)],
           "epochs": [{"epoch": 1, "step": 10, "val_loss": 2.5, "R@1": 0.1, "R@5": 0.3, "R@10": 0.4}]}


def test_history_is_saved_as_json_and_a_png(tmp_path):
    write_history(HISTORY, tmp_path)
    assert json.loads((tmp_path / "history.json").read_text()) == HISTORY
    with Image.open(tmp_path / "history.png") as image:
        assert image.format == "PNG" and image.width > 500
    write_history({"steps": [], "epochs": []}, tmp_path)
    assert json.loads((tmp_path / "history.json").read_text()) == {"steps": [], "epochs": []}
    assert not list(tmp_path.glob(".*.tmp"))
