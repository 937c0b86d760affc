"""Run a generator on the main thread one step per event-loop turn."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from qtpy.QtCore import QObject, QTimer
from qtpy.QtWidgets import QWidget

#: What a step yields when it changed nothing that shows, such as adding a
#: hidden layer: the window is then not repainted until the next step starts.
#: The repaint after an add (25-50 ms here, the canvas's included) would fall
#: in the add's own turn; held, it merges with the next step's.
HOLD_PAINT = object()
#: The longest a window stays unpainted, whatever happens to the generator.
HOLD_LIMIT_MS = 1000


class Turns:
    """Advance a generator one step per event-loop turn, then hand its result on.

    Work that must run on the main thread, such as napari's adds of large
    layers (about 0.1 s each here), blocks the window once per step instead of
    once for all of them: between two steps Qt repaints and handles input.

    Parameters
    ----------
    parent
        The QObject that owns the timer, if any; no step runs after it is deleted.
    pause_ms
        Time between the end of one step and the start of the next.  With no
        pause, Qt ran the next step as soon as the previous step's paint was
        done, before its other timers, so two steps could still block the
        window as one; one frame's pause (16 ms) lets everything due run between.

    A step that yields :data:`HOLD_PAINT` leaves the parent's window (when the
    parent is a widget) unpainted until the next step starts or the generator
    ends; input is still handled meanwhile.
    """

    def __init__(self, parent: QObject | None = None, pause_ms: int = 16) -> None:
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(pause_ms)
        self._timer.timeout.connect(self._step)
        self._gen: Generator[Any, None, Any] | None = None
        self._done: Callable[[Any], None] | None = None
        self._after: list[Callable[[], None]] = []
        self._held: QWidget | None = None
        self._guard: QTimer | None = None

    @property
    def busy(self) -> bool:
        """Whether a generator is still being advanced."""
        return self._gen is not None

    def start(
        self, gen: Generator[Any, None, Any], on_done: Callable[[Any], None] | None = None
    ) -> None:
        """Run ``gen``'s first step now and the others in later turns.

        ``on_done`` gets the generator's return value, or None when a step
        raised (the error then goes on to napari's handler).
        """
        if self._gen is not None:
            raise RuntimeError("a generator is already being run in turns")
        self._gen, self._done = gen, on_done
        self._step()

    def _step(self) -> None:
        self._release()
        gen = self._gen
        if gen is None:
            return
        try:
            value = next(gen)
        except StopIteration as end:
            self._finish(end.value)
            return
        except BaseException:
            self._finish(None)
            raise
        try:
            self._timer.start()
        except RuntimeError:  # the owner, and its timer, were deleted meanwhile
            self._gen = self._done = None
            return
        if value is HOLD_PAINT:
            self._hold()

    def _hold(self) -> None:
        parent = self._timer.parent()
        window = parent.window() if isinstance(parent, QWidget) else None
        if window is None or not window.updatesEnabled():
            return
        window.setUpdatesEnabled(False)
        self._held = window
        # Should the owner go before its next step (its timer goes with it),
        # the window paints again all the same.
        guard = QTimer(window)
        guard.setSingleShot(True)
        guard.timeout.connect(lambda: window.setUpdatesEnabled(True))
        guard.timeout.connect(guard.deleteLater)
        guard.start(HOLD_LIMIT_MS)
        self._guard = guard

    def _release(self) -> None:
        window, guard, self._held, self._guard = self._held, self._guard, None, None
        if window is not None:
            try:
                guard.stop()
                guard.deleteLater()
                window.setUpdatesEnabled(True)  # and repaints it whole
            except RuntimeError:  # the window, and the guard, were deleted meanwhile
                pass

    def then(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now when nothing runs, else right after the running generator ends.

        A worker's end (dropping it, hiding its progress) waits this way for
        the layers its result is still making.
        """
        if self._gen is None:
            callback()
        else:
            self._after.append(callback)

    def _finish(self, value: Any) -> None:
        done, after = self._done, self._after
        self._gen, self._done, self._after = None, None, []
        try:
            if done is not None:
                done(value)
        finally:
            for callback in after:
                callback()
