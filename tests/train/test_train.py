import json

import pytest
import torch

from fakes import interrupt_training_at, same_weights
from stylesearch.config import TrainConfig
from stylesearch.data.prepare import load_processed
from stylesearch.train.loop import train
from stylesearch.train.sampler import epoch_batches
from stylesearch.train.validation import ValidationSet

FAST = TrainConfig(base_model="tiny", lr=1e-3, weight_decay=0.1, batch_size=16, epochs=2, warmup_steps=3,
                   patience=5, save_every_steps=4)


def test_short_training_lowers_val_loss_and_raises_recall(processed_dir, tmp_path, tiny):
    catalog = load_processed(processed_dir)
    val = catalog.split("val")
    before = ValidationSet.build(tiny, val).metrics(tiny, 16)
    result = train(catalog, FAST, tmp_path / "run")
    from stylesearch.model.clip import load_model

    best = load_model(str(tmp_path / "run" / "best"))
    after = ValidationSet.build(best, val).metrics(best, 16)
    assert after["val_loss"] < before["val_loss"]
    assert after["R@10"] > before["R@10"]
    assert result.stopped == "epochs" and result.steps > 0
    for name in ("history.json", "history.png", "best/model.safetensors", "best/config.json",
                 "best/train_config.json", "last/training_state.pt", "last/checkpoint.json"):
        assert (tmp_path / "run" / name).is_file(), name


def test_resume_after_interruption_continues_from_the_saved_step(processed_dir, tmp_path, monkeypatch):
    catalog = load_processed(processed_dir)
    full = train(catalog, FAST, tmp_path / "full")

    interrupt_training_at(monkeypatch, 6)
    cut = train(catalog, FAST, tmp_path / "cut")
    assert cut.stopped == "interrupted" and cut.steps == 6
    state = torch.load(tmp_path / "cut" / "last" / "training_state.pt", weights_only=True)
    assert state["step"] == 6

    monkeypatch.undo()
    resumed = train(catalog, FAST, tmp_path / "cut", resume=True)
    assert resumed.resumed.startswith(f"resuming from {tmp_path / 'cut' / 'last'}: epoch 1, batch 6 of ")
    assert ", step 6, " in resumed.resumed and full.resumed is None
    assert resumed.steps == full.steps
    assert same_weights(tmp_path / "full" / "last", tmp_path / "cut" / "last")
    hist = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert [s["step"] for s in hist["steps"]] == list(range(1, full.steps + 1))


def test_resume_with_nothing_there_says_it_starts_fresh(processed_dir, tmp_path, capsys):
    one = TrainConfig(**{**FAST.__dict__, "epochs": 1})
    result = train(load_processed(processed_dir), one, tmp_path / "new", resume=True)
    assert result.resumed == f"nothing to resume in {tmp_path / 'new' / 'last'} (no training_state.pt); starting fresh"
    assert result.resumed in capsys.readouterr().out and result.steps > 0


def test_epoch_batches_are_a_pure_function_of_seed_and_epoch():
    assert epoch_batches(50, 16, 0, 1) == epoch_batches(50, 16, 0, 1)
    assert epoch_batches(50, 16, 0, 1) != epoch_batches(50, 16, 0, 2)
    assert sorted(i for b in epoch_batches(50, 16, 0, 0) for i in b) == list(range(50))


def test_freezing_layers_keeps_them_unchanged(processed_dir, tmp_path, tiny):
    from dataclasses import replace

    before = {k: v.clone() for k, v in tiny.model.vision_model.encoder.layers[0].state_dict().items()}
    train(load_processed(processed_dir), replace(FAST, epochs=1, freeze_vision_layers=1), tmp_path / "f", loaded=tiny)
    after = tiny.model.vision_model.encoder.layers[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("hue", [False, True])
def test_colour_jitter_only_when_asked(hue):
    from stylesearch.train.pairs import train_transform

    jitter = [t for t in train_transform(64, hue_jitter=hue).transforms if type(t).__name__ == "ColorJitter"][0]
    assert (jitter.hue is not None) == hue


def test_resume_with_settings_that_change_the_run_is_refused_with_the_flags_to_pass(processed_dir, tmp_path):
    from dataclasses import replace

    from stylesearch.errors import ResumeMismatchError

    catalog = load_processed(processed_dir)
    started = replace(FAST, epochs=1, text_views="full_text", hue_jitter=False)
    train(catalog, started, tmp_path / "run")
    with pytest.raises(ResumeMismatchError, match="text_views='full_text'.*pass --text-views full_text"):
        train(catalog, replace(started, epochs=2, text_views="views"), tmp_path / "run", resume=True)
    with pytest.raises(ResumeMismatchError, match="--no-hue-jitter"):
        train(catalog, replace(started, epochs=2, hue_jitter=True), tmp_path / "run", resume=True)
    resumed = train(catalog, replace(started, epochs=2), tmp_path / "run", resume=True)  # more epochs: fine
    assert resumed.epochs_done == 2


class FakeClock:
    """Advances `tick` seconds each time it is read: a run's duration is a function of its step count."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_a_time_budget_anneals_the_learning_rate_to_zero_by_the_end(processed_dir, tmp_path):
    from dataclasses import replace

    # 100 epochs would put the whole run in the first percent of an epoch-long schedule; the budget decides.
    cfg = replace(FAST, epochs=100, patience=100, max_minutes=0.5, warmup_steps=2, save_every_steps=0)
    result = train(load_processed(processed_dir), cfg, tmp_path / "run", clock=FakeClock(0.5))
    assert result.stopped == "time budget"
    lrs = [s["lr"] for s in result.history["steps"]]
    assert max(lrs) == pytest.approx(cfg.lr)
    assert lrs[-1] < 0.02 * cfg.lr  # ended annealed
    after_warmup = lrs[cfg.warmup_steps:]
    assert all(b <= a + 1e-12 for a, b in zip(after_warmup, after_warmup[1:], strict=False))
    # The final evaluation ran after the last step, and `best` is chosen with it.
    final = result.history["epochs"][-1]
    assert final["step"] == result.steps
    assert result.best_metric == max(e["R@10"] for e in result.history["epochs"])


def test_a_resumed_budget_run_continues_the_schedule(processed_dir, tmp_path, monkeypatch):
    from dataclasses import replace

    cfg = replace(FAST, epochs=100, patience=100, max_minutes=0.5, warmup_steps=2, save_every_steps=1)
    catalog = load_processed(processed_dir)
    full = train(catalog, cfg, tmp_path / "full", clock=FakeClock(0.5))
    interrupt_training_at(monkeypatch, 5)
    train(catalog, cfg, tmp_path / "cut", clock=FakeClock(0.5))
    monkeypatch.undo()
    resumed = train(catalog, cfg, tmp_path / "cut", resume=True, clock=FakeClock(0.5))
    state = torch.load(tmp_path / "cut" / "last" / "training_state.pt", weights_only=True)
    assert state["elapsed"] > 0
    # Elapsed time is carried over: the resumed run does not get a fresh budget.
    assert resumed.steps <= full.steps + 2
    assert resumed.history["steps"][-1]["lr"] < 0.05 * cfg.lr


def test_sigmoid_loss_trains_and_resumes_with_its_learned_bias(processed_dir, tmp_path, monkeypatch):
    from dataclasses import replace

    from stylesearch.errors import ResumeMismatchError

    catalog = load_processed(processed_dir)
    cfg = replace(FAST, loss="sigmoid", save_every_steps=1)
    full = train(catalog, cfg, tmp_path / "full")
    bias = torch.load(tmp_path / "full" / "last" / "training_state.pt", weights_only=True)["logit_bias"]
    assert bias != -10.0  # learned, not the initial value
    assert full.history["steps"][-1]["loss"] < full.history["steps"][0]["loss"]

    interrupt_training_at(monkeypatch, 5)
    train(catalog, cfg, tmp_path / "cut")
    monkeypatch.undo()
    with pytest.raises(ResumeMismatchError, match="--loss sigmoid"):
        train(catalog, replace(cfg, loss="softmax"), tmp_path / "cut", resume=True)
    train(catalog, cfg, tmp_path / "cut", resume=True)
    resumed = torch.load(tmp_path / "cut" / "last" / "training_state.pt", weights_only=True)["logit_bias"]
    assert resumed == pytest.approx(bias, abs=1e-5)
    assert same_weights(tmp_path / "full" / "last", tmp_path / "cut" / "last")


def test_an_unknown_loss_is_refused_by_name(processed_dir, tmp_path):
    from dataclasses import replace

    from stylesearch.errors import StylesearchError

    with pytest.raises(StylesearchError, match="unknown loss 'hinge'; use one of softmax, sigmoid"):
        train(load_processed(processed_dir), replace(FAST, loss="hinge"), tmp_path / "run")
