"""The one place that starts threads: run a core generator or a function in a napari worker."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from napari.qt.threading import FunctionWorker, GeneratorWorker
from napari.utils.notifications import show_error


def start_generator(
    gen: Generator,
    *,
    on_yield: Callable[[Any], None] | None = None,
    on_return: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finish: Callable[[], None] | None = None,
) -> GeneratorWorker:
    """Run a core generator in a napari thread worker and wire its signals.

    The generator must already be created from numpy copies of layer data
    (never hand a layer to a thread).  Errors become a napari notification
    with a one-line reason, then ``on_error`` runs.  :func:`stop` asks the
    worker to stop at the next yield.  superqt's worker does not close the
    generator when it stops, and closing it from the main thread while it runs
    would raise; so the generator is closed here, on the main thread, when the
    worker has finished (returned, failed or quit), which runs its ``finally``
    blocks before ``on_finish``.

    Returns
    -------
    GeneratorWorker
        The started worker; keep a reference until it finishes.
    """

    def _work():
        return (yield from gen)

    worker = GeneratorWorker(_work)
    # Connected first, so the generator is closed before the caller's on_finish.
    worker.finished.connect(gen.close)
    if on_yield is not None:
        worker.yielded.connect(on_yield)
    return _wire_and_start(worker, on_return, on_error, on_finish)


def start_function(
    func: Callable[[], Any],
    *,
    on_return: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finish: Callable[[], None] | None = None,
) -> FunctionWorker:
    """Run a short computation (no progress, no cancel) in a napari thread worker.

    ``func`` gets numpy arrays only, never a layer.  Errors become a napari
    notification with a one-line reason, then ``on_error`` runs.

    Returns
    -------
    FunctionWorker
        The started worker; keep a reference until it finishes.
    """
    return _wire_and_start(FunctionWorker(func), on_return, on_error, on_finish)


def _wire_and_start(worker: Any, on_return: Any, on_error: Any, on_finish: Any) -> Any:
    """Connect the result, error and finish handlers, then start the worker."""
    if on_return is not None:
        worker.returned.connect(on_return)

    def _errored(exc: BaseException) -> None:
        show_error(f"napari-unet: {_one_line(exc)}")
        if on_error is not None:
            on_error(exc)

    worker.errored.connect(_errored)
    if on_finish is not None:
        worker.finished.connect(on_finish)
    worker.start()
    return worker


def stop(worker: GeneratorWorker | None) -> None:
    """Ask a running worker to stop at its next yield."""
    if worker is None:
        return
    worker.quit()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
