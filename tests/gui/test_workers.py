"""The worker contract: a core generator is closed however its worker ends."""

from __future__ import annotations

import time

import pytest

from napari_unet.gui.workers import start_generator, stop

pytestmark = pytest.mark.gui


def counting(log: list, fail_at: int | None = None, steps: int = 1000, delay: float = 0.0):
    try:
        for i in range(steps):
            time.sleep(delay)
            if i == fail_at:
                raise ValueError("broken input: fix it")
            log.append(i)
            yield i
        return "done"
    finally:
        log.append("closed")


def run(qtbot, gen, **handlers):
    finished: list[str] = []
    worker = start_generator(gen, on_finish=lambda: finished.append("finish"), **handlers)
    return worker, finished


def test_a_generator_that_returns_is_closed_before_on_finish(qtbot):
    log: list = []
    returned: list = []
    seen_at_finish: list = []
    gen = counting(log, steps=3)
    start_generator(
        gen,
        on_return=returned.append,
        on_finish=lambda: seen_at_finish.append(list(log)),
    )
    qtbot.waitUntil(lambda: bool(seen_at_finish), timeout=10_000)
    assert returned == ["done"]
    assert log[-1] == "closed" and seen_at_finish[0][-1] == "closed"


def test_a_stopped_worker_closes_its_generator(qtbot):
    log: list = []
    gen = counting(log, delay=0.005)  # slow enough for the main thread to ask it to stop
    worker, finished = run(qtbot, gen, on_yield=lambda i: stop(worker) if i == 2 else None)
    qtbot.waitUntil(lambda: bool(finished), timeout=10_000)
    assert log[-1] == "closed" and len(log) < 1000


def test_a_failing_generator_is_closed_and_reported_in_one_line(qtbot, messages):
    log: list = []
    errors: list = []
    worker, finished = run(qtbot, counting(log, fail_at=2), on_error=errors.append)
    qtbot.waitUntil(lambda: bool(finished), timeout=10_000)
    assert log[-1] == "closed"
    assert isinstance(errors[0], ValueError)
    assert any("broken input: fix it" in m for m in messages)
