"""Lazy: built once; `wait=False` never blocks on a build, and starts one when nobody has."""

from __future__ import annotations

import threading
import time

from stylesearch.search.lazy import Lazy


def slow_build(release: threading.Event, calls: list[str]):
    def build() -> str:
        calls.append(threading.current_thread().name)
        assert release.wait(10)
        return "built"
    return build


def test_get_without_waiting_answers_not_ready_at_once_and_builds_in_the_background():
    lazy: Lazy[str] = Lazy()
    release, calls = threading.Event(), []
    start = time.monotonic()
    assert lazy.get(slow_build(release, calls), wait=False) is None
    assert time.monotonic() - start < 1  # not the build's time: the caller was not the builder
    assert lazy.get(slow_build(release, calls), wait=False) is None  # still building: no second build
    release.set()
    deadline = time.monotonic() + 10
    while not lazy.ready and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lazy.get(slow_build(release, calls), wait=False) == "built"
    assert len(calls) == 1 and calls[0] != threading.current_thread().name


def test_a_waiting_caller_gets_the_background_build_not_a_second_one():
    lazy: Lazy[str] = Lazy()
    release, calls = threading.Event(), []
    assert lazy.get(slow_build(release, calls), wait=False) is None
    got: list[str | None] = []
    waiter = threading.Thread(target=lambda: got.append(lazy.get(slow_build(release, calls))))
    waiter.start()
    time.sleep(0.1)
    assert waiter.is_alive()  # blocked on the build the first call started
    release.set()
    waiter.join(10)
    assert got == ["built"] and len(calls) == 1


def test_a_failed_background_build_is_logged_and_tried_again(caplog):
    lazy: Lazy[str] = Lazy()
    attempts = []

    def failing() -> str:
        attempts.append(1)
        raise RuntimeError("disk on fire")

    assert lazy.get(failing, wait=False) is None
    deadline = time.monotonic() + 10
    while "disk on fire" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "disk on fire" in caplog.text and not lazy.ready
    assert lazy.get(lambda: "second", wait=True) == "second"  # the lock was released: nothing hangs
    assert attempts == [1]
