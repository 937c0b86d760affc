"""Calm napari's "in progress" animation during long CPU work.

Kept apart from the widgets: it reaches into the whole application's widget
tree (public Qt calls only), not into one widget's own state.
"""

from __future__ import annotations

from qtpy.QtGui import QMovie
from qtpy.QtWidgets import QApplication, QLabel


def slow_animations(percent: int) -> list[tuple[QMovie, int]]:
    """Slow every animated label of the application (napari's "in progress" spinner).

    The spinner plays a 34 frames-per-second GIF while any progress bar is
    open.  Each frame repaints the main window, and a window that holds an
    OpenGL canvas is recomposited as a whole: with software OpenGL (Mesa on a
    virtual display, remote desktops) that cost 35-45 % of a CPU core, taken
    from the training threads for the whole run (measured by
    ``benchmarks/bench_finetune_worker.py``).  A few frames a second still
    show that work is going on.

    Returns
    -------
    list of (QMovie, int)
        The animations changed and their former speeds, for
        :func:`restore_animations`.
    """
    changed = []
    for window in QApplication.topLevelWidgets():
        for label in window.findChildren(QLabel):
            movie = label.movie()
            if movie is not None and movie.speed() > percent:
                changed.append((movie, movie.speed()))
                movie.setSpeed(percent)
    return changed


def restore_animations(changed: list[tuple[QMovie, int]]) -> None:
    """Give the animations slowed by :func:`slow_animations` their speed back."""
    for movie, speed in changed:
        try:
            movie.setSpeed(speed)
        except RuntimeError:  # deleted with its window meanwhile
            pass
