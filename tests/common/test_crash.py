"""Crash safety: `stylesearch train`, `index` and `index --update` really killed with SIGKILL (and Ctrl-C).

Each test starts the real command in a subprocess and kills it at a chosen point: either the process
SIGKILLs itself from inside a hook (at training step N, while a checkpoint or index is being
written, after N embedding chunks), or the test SIGKILLs it from outside after a seeded random delay
once a file appears. Afterwards the previous checkpoint or index must be intact and loadable, and
re-running (with --resume for training) must reach what an uninterrupted run reaches.

Tiny model, 100 drawn products, batch 16, 2 epochs (10 steps). The slowest variants are marked slow.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from fakes import sha256_dir
from stylesearch.cli import search as cli_search
from stylesearch.cli.base import app
from stylesearch.config import IndexConfig, PrepareConfig
from stylesearch.data.catalog import read_catalog
from stylesearch.data.prepare import prepare
from stylesearch.data.synthetic import make_catalog
from stylesearch.index.store import EmbeddingIndex
from stylesearch.model.checkpoint import load_training_state
from stylesearch.model.clip import ClipEncoder, load_model, tiny_model
from stylesearch.search.searcher import Searcher

runner = CliRunner()
SAVE_EVERY = 3  # `last` at step 3, at the end of epoch 1 (step 5 or more), at step 6, ...
CHUNK = 16  # vectors per resumable index chunk: 100 products make 7 chunks
TRAIN_ARGS = ["--model", "tiny", "--lr", "1e-3", "--batch-size", "16", "--epochs", "2", "--warmup-steps", "3",
              "--patience", "5", "--seed", "0", "--save-every-steps", str(SAVE_EVERY)]
STARTUP_S = 240  # a fresh interpreter imports torch + transformers; the 2-core CI box is slow and shared

# Runs in the child: install the kill hook named by CRASH_AT, then run the real CLI.
BOOT = r"""
import functools, os, signal, sys
from pathlib import Path

def die():
    sys.stdout.flush(); sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def nth(n, fn):
    calls = [0]
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            die()
        return fn(*args, **kwargs)
    return wrapped

import stylesearch.cli.base
from stylesearch.cli import search as cli_search
from stylesearch import config
from stylesearch.index import embedding
from stylesearch.common import files
from stylesearch.train import loop as train

if os.environ.get("CRASH_CHUNK"):
    cli_search.IndexConfig = functools.partial(config.IndexConfig, chunk_size=int(os.environ["CRASH_CHUNK"]))
kind, _, n = os.environ.get("CRASH_AT", "").partition(":")
if kind == "step":  # before training step n+1: n optimizer steps are done
    real_lr_at = train.lr_at
    def lr_at(step, **kw):
        if step == int(n):
            die()
        return real_lr_at(step, **kw)
    train.lr_at = lr_at
elif kind == "write":  # the n-th atomic directory write, complete in its tmp dir, not yet swapped in
    files._fsync_dir = nth(int(n), files._fsync_dir)
elif kind == "embed":  # before embedding the n-th chunk (chunks 1..n-1 are saved)
    embedding.embed_rows = nth(int(n), embedding.embed_rows)
elif kind == "swap":  # right after the old and new directories were exchanged, before the old is removed
    real_exchange = files._exchange
    swaps = []
    def exchange(a, b):
        done = real_exchange(a, b)
        swaps.append(1)
        if len(swaps) == int(n):
            die()
        return done
    files._exchange = exchange
sys.argv[0] = "stylesearch"
stylesearch.cli.base.app()
"""


# --- helpers -------------------------------------------------------------------------------------


def launch(args: list[str], logs: Path, **env: str) -> subprocess.Popen:
    logs.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "CRASH_CHUNK": str(CHUNK), **env}
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:  # the child keeps its own copies
        return subprocess.Popen([sys.executable, "-c", BOOT, *args], env=child_env, stdout=out, stderr=err)


def finish(proc: subprocess.Popen, logs: Path, timeout: float = STARTUP_S) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"child still running after {timeout} s:\n{(logs / 'stderr').read_text()[-3000:]}")


def killed_by_itself(args: list[str], logs: Path, crash_at: str) -> None:
    """Run the command until its hook SIGKILLs it; fail if it finished some other way."""
    code = finish(launch(args, logs, CRASH_AT=crash_at), logs)
    assert code == -signal.SIGKILL, f"exit {code}, not SIGKILL:\n{(logs / 'stderr').read_text()[-3000:]}"


def wait_for(path: Path, proc: subprocess.Popen, logs: Path, timeout: float = STARTUP_S) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"child exited ({proc.returncode}) before {path} appeared:\n"
                        f"{(logs / 'stderr').read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


def cli(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def assert_resumable(last: Path) -> dict:
    """`last` is complete: its hashes verify, the weights load through safetensors, the state loads."""
    load_model(str(last))
    state = load_training_state(last)
    assert state["step"] == json.loads((last / "checkpoint.json").read_text())["step"]
    return state


def assert_same_training(run: Path, reference: Path) -> None:
    """Same final weights (float tolerance), same step log and the same per-epoch validation metrics."""
    a = load_file(reference / "last" / "model.safetensors")
    b = load_file(run / "last" / "model.safetensors")
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, f"weights differ by up to {worst}"
    ref, got = (json.loads((d / "history.json").read_text()) for d in (reference, run))
    assert [s["step"] for s in got["steps"]] == [s["step"] for s in ref["steps"]]
    np.testing.assert_allclose([s["loss"] for s in got["steps"]], [s["loss"] for s in ref["steps"]], atol=1e-4)
    assert len(got["epochs"]) == len(ref["epochs"])
    for e_got, e_ref in zip(got["epochs"], ref["epochs"], strict=True):
        for key in ("R@1", "R@5", "R@10", "val_loss"):
            assert e_got[key] == pytest.approx(e_ref[key], abs=1e-4), (e_got["epoch"], key)


def resume(run: Path, catalog: Path) -> None:
    cli("train", "--catalog", str(catalog), "--out", str(run), *TRAIN_ARGS, "--resume")


def index_files(path: Path) -> str:
    return sha256_dir(path)


def assert_index_loads(path: Path) -> None:
    index = EmbeddingIndex.load(path)
    searcher = Searcher.from_index(path, ClipEncoder(tiny_model(seed=0), device=None))
    assert len(searcher) == len(index) > 0 and searcher.search("red tshirt", k=3)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash")


@pytest.fixture(scope="module")
def catalog(work: Path) -> Path:
    """100 drawn products, prepared through `stylesearch prepare`."""
    raw = make_catalog(work / "raw", n=100, seed=0)
    cli("prepare", "--data", str(raw), "--out", str(work / "catalog"))
    return work / "catalog"


@pytest.fixture(scope="module")
def bigger_catalog(work: Path) -> Path:
    """The same 100 products plus 40 more: what `index --update` has to add."""
    out = work / "catalog-140"
    prepare(read_catalog(make_catalog(work / "raw-140", n=140, seed=0)), PrepareConfig(), out)
    return out


@pytest.fixture(scope="module")
def reference_run(work: Path, catalog: Path) -> Path:
    """The uninterrupted run every resumed one must match."""
    out = work / "reference"
    cli("train", "--catalog", str(catalog), "--out", str(out), *TRAIN_ARGS)
    epochs = json.loads((out / "history.json").read_text())["epochs"]
    assert len(epochs) == 2 and epochs[0]["step"] >= 5, "enough steps in epoch 1 for the kill points below"
    return out


def epoch_one_steps(reference_run: Path) -> int:
    return int(json.loads((reference_run / "history.json").read_text())["epochs"][0]["step"])


@pytest.fixture(scope="module")
def reference_index(work: Path, catalog: Path) -> Path:
    out = work / "reference-index"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_search, "IndexConfig", functools.partial(IndexConfig, chunk_size=CHUNK))
        cli("index", "--catalog", str(catalog), "--out", str(out), "--model", "tiny", "--quiet")
    return out


def train_args(catalog: Path, out: Path) -> list[str]:
    return ["train", "--catalog", str(catalog), "--out", str(out), *TRAIN_ARGS]


# --- train ---------------------------------------------------------------------------------------


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(work, catalog, reference_run):
    run = work / "killed-at-step-4"
    killed_by_itself(train_args(catalog, run), work / "logs-step", "step:4")
    state = assert_resumable(run / "last")
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (3, 0, 3), "the save before the kill"
    resume(run, catalog)
    assert_same_training(run, reference_run)


@pytest.mark.slow
def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(work, catalog, reference_run):
    # Atomic directory writes so far: last@3, best@5, last@5; the 4th is last@6, killed before its swap.
    run = work / "killed-writing"
    killed_by_itself(train_args(catalog, run), work / "logs-write", "write:4")
    assert list(run.glob("last.tmp-*")), "the kill came while the new checkpoint was still in its tmp dir"
    state = assert_resumable(run / "last")
    assert state["step"] == epoch_one_steps(reference_run) and state["batch_in_epoch"] == 0
    load_model(str(run / "best"))
    resume(run, catalog)
    assert_same_training(run, reference_run)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_from_outside_at_a_random_moment_then_resume(work, catalog, reference_run, seed):
    run = work / f"killed-random-{seed}"
    logs = work / f"logs-random-{seed}"
    proc = launch(train_args(catalog, run), logs)
    wait_for(run / "last" / "checkpoint.json", proc, logs)
    time.sleep(random.Random(seed).uniform(0.0, 1.5))
    proc.send_signal(signal.SIGKILL)
    assert finish(proc, logs) == -signal.SIGKILL, "the run finished before the kill; nothing was tested"
    assert_resumable(run / "last")
    if (run / "best").exists():
        load_model(str(run / "best"))
    resume(run, catalog)
    assert_same_training(run, reference_run)


def test_ctrl_c_saves_a_resumable_last_and_exits_130(work, catalog, reference_run):
    run = work / "interrupted"
    logs = work / "logs-sigint"
    proc = launch(train_args(catalog, run), logs)
    wait_for(run / "last" / "checkpoint.json", proc, logs)  # step 3 is saved; now somewhere in steps 4-5
    proc.send_signal(signal.SIGINT)
    assert finish(proc, logs) == 130, (logs / "stderr").read_text()[-3000:]
    said = " ".join(((logs / "stdout").read_text() + (logs / "stderr").read_text()).split())
    assert "stopped: interrupted" in said
    state = assert_resumable(run / "last")
    assert state["step"] >= 3
    assert not list(run.glob("*.tmp-*")), "a clean exit leaves no half-written directory"
    resume(run, catalog)
    assert_same_training(run, reference_run)


@pytest.mark.slow
def test_ctrl_c_right_after_the_epoch_end_save_does_not_repeat_the_epoch(work, catalog, reference_run,
                                                                           monkeypatch):
    # write_history draws history.png (matplotlib, hundreds of ms): the likeliest moment for a Ctrl-C
    # to land after an epoch's `last` has been saved.
    import stylesearch.train.loop as train_module

    run = work / "interrupted-at-epoch-end"
    real = train_module.write_history
    calls = []

    def interrupted_once(history, out_dir):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(history, out_dir)

    monkeypatch.setattr(train_module, "write_history", interrupted_once)
    result = runner.invoke(app, train_args(catalog, run))
    assert result.exit_code == 130
    monkeypatch.undo()
    resume(run, catalog)
    assert_same_training(run, reference_run)


# --- index and index --update ----------------------------------------------------------------------


def test_sigkill_during_index_build_leaves_no_index_and_the_rerun_resumes(work, catalog, reference_index):
    out = work / "index-killed"
    args = ["index", "--catalog", str(catalog), "--out", str(out), "--model", "tiny", "--quiet"]
    killed_by_itself(args, work / "logs-index", "embed:4")
    assert not out.exists(), "no half-written index directory"
    chunks = sorted(out.with_name("index-killed.work").rglob("chunk-*.npy"))
    assert len(chunks) == 3
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_search, "IndexConfig", functools.partial(IndexConfig, chunk_size=CHUNK))
        result = cli(*args)
    assert "reused 48" in " ".join(result.output.split())
    assert_index_loads(out)
    np.testing.assert_allclose(EmbeddingIndex.load(out).vectors(), EmbeddingIndex.load(reference_index).vectors(),
                               atol=1e-5)
    assert not out.with_name("index-killed.work").exists()


@pytest.mark.parametrize("crash_at", ["embed:2", pytest.param("write:1", marks=pytest.mark.slow)])
def test_sigkill_during_index_update_keeps_the_previous_index(work, catalog, bigger_catalog, reference_index,
                                                             crash_at):
    out = work / f"index-update-{crash_at.replace(':', '-')}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_search, "IndexConfig", functools.partial(IndexConfig, chunk_size=CHUNK))
        cli("index", "--catalog", str(catalog), "--out", str(out), "--model", "tiny", "--quiet")
    before = index_files(out)
    args = ["index", "--update", "--catalog", str(bigger_catalog), "--out", str(out), "--model", "tiny", "--quiet"]
    killed_by_itself(args, work / f"logs-{out.name}", crash_at)
    assert index_files(out) == before, "the previous index is untouched"
    assert len(EmbeddingIndex.load(out)) == len(EmbeddingIndex.load(reference_index))
    assert_index_loads(out)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_search, "IndexConfig", functools.partial(IndexConfig, chunk_size=CHUNK))
        cli(*args)
    updated = EmbeddingIndex.load(out)
    rebuilt, _ = EmbeddingIndex.build(bigger_catalog, ClipEncoder(tiny_model(seed=0), device=None), None,
                                      IndexConfig(chunk_size=CHUNK), progress=False)
    assert list(updated.products["id"]) == list(rebuilt.products["id"])
    np.testing.assert_allclose(updated.vectors(), rebuilt.vectors(), atol=1e-5)


# --- the directory swap: one atomic exchange, so there is no moment without an index -----------------


@pytest.mark.slow
def test_sigkill_at_the_directory_swap_of_an_index_update_leaves_a_loadable_index(work, catalog, bigger_catalog):
    out = work / "index-swap"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli_search, "IndexConfig", functools.partial(IndexConfig, chunk_size=CHUNK))
        cli("index", "--catalog", str(catalog), "--out", str(out), "--model", "tiny", "--quiet")
    args = ["index", "--update", "--catalog", str(bigger_catalog), "--out", str(out), "--model", "tiny", "--quiet"]
    killed_by_itself(args, work / "logs-swap", "swap:1")
    assert_index_loads(out)
