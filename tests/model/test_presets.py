import pytest
from typer.testing import CliRunner

from stylesearch.cli.base import app
from stylesearch.config import TrainConfig
from stylesearch.errors import StylesearchError
from stylesearch.model.clip import load_model
from stylesearch.model.presets import PRESETS, recipe_warning, train_config


def test_a_preset_brings_its_recipe_and_explicit_flags_override_it():
    small = train_config("small")
    for field, value in PRESETS["small"].recipe.items():
        assert getattr(small, field) == value
    assert small.lr >= 100 * TrainConfig().lr  # a from-scratch rate, not the fine-tuning one
    tuned = train_config("small", lr=3e-4, batch_size=None)  # None = flag not given
    assert tuned.lr == 3e-4 and tuned.batch_size == small.batch_size


def test_a_pretrained_model_keeps_the_fine_tuning_defaults():
    cfg = train_config("openai/clip-vit-base-patch32", epochs=2)
    assert cfg.lr == TrainConfig().lr and cfg.epochs == 2 and not cfg.pixel_cache


def test_unknown_settings_are_refused():
    with pytest.raises(StylesearchError, match="unknown training settings: lrr"):
        train_config("small", lrr=1.0)


def test_every_preset_loads_with_its_shape():
    for name, preset in PRESETS.items():
        loaded = load_model(name)
        assert loaded.name == name
        assert loaded.model.config.vision_config.hidden_size == preset.shape.hidden
        assert loaded.model.config.text_config.max_position_embeddings == preset.shape.max_text_tokens
        assert loaded.model.config.vision_config.image_size == preset.shape.image_size


def test_a_fine_tuning_lr_on_a_random_init_model_is_warned_about():
    assert recipe_warning(train_config("small")) is None
    assert recipe_warning(train_config("openai/clip-vit-base-patch32")) is None
    message = recipe_warning(TrainConfig(base_model="tiny"))  # the library default lr, 5e-6
    assert message and "random weights" in message and "\n" not in message


def test_the_cli_prints_the_warning_in_one_line(processed_dir, tmp_path):
    result = CliRunner().invoke(app, ["train", "--catalog", str(processed_dir), "--out", str(tmp_path / "run"),
                                      "--model", "tiny", "--lr", "5e-6", "--epochs", "1", "--batch-size", "32"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "5e-06" in warnings[0]
