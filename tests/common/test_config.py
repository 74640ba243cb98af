import json
from dataclasses import FrozenInstanceError

import pytest

from stylesearch.config import PrepareConfig, TrainConfig, from_dict, to_dict


def test_configs_are_frozen_and_round_trip_through_json(tmp_path):
    cfg = TrainConfig(base_model="tiny", epochs=3)
    with pytest.raises(FrozenInstanceError):
        cfg.epochs = 4  # type: ignore[misc]
    saved = json.loads(json.dumps(to_dict(cfg)))
    assert from_dict(TrainConfig, saved) == cfg
    assert from_dict(PrepareConfig, to_dict(PrepareConfig())).split == (0.8, 0.1, 0.1)


def test_defaults_follow_the_known_recipe():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.hue_jitter) == (5e-6, 32, 5, False)
