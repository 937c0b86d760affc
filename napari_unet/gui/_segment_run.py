"""Segment's job in the worker, its uncertainty layer and two small controls."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Generator
from typing import Any

import numpy as np

from napari_unet.core.events import Notice, Progress
from napari_unet.core.preload import preload_torch_library
from napari_unet.gui._gc import collections_paused
from napari_unet.gui._layers import fresh_name
from napari_unet.gui._model_choice import DEFAULT


def load_and_predict(
    image: np.ndarray, model: Any | None, name: str, *, tta: bool = False, **options: Any
) -> Generator[Any, None, tuple[Any, Any]]:
    """Load the shipped model if ``model`` is None, then predict; runs in the worker.

    With ``tta`` the 8 flips and rotations are predicted and averaged
    (:func:`napari_unet.core.tta.iter_predict_tta`), and the prediction
    carries their spread as ``uncertainty``; an
    :class:`~napari_unet.core.ensemble.Ensemble` predicts with every model and
    carries the spread across them (:func:`~napari_unet.core.ensemble.iter_predict_ensemble`).
    Yields the prediction's events (a busy :class:`Progress` while loading);
    returns ``(model, Prediction)``, with the objects of a two-output model split
    at its threshold (``Prediction.objects``).
    """
    from napari_unet.core.checkpoint import load_model
    from napari_unet.core.ensemble import Ensemble, iter_predict_ensemble
    from napari_unet.core.images import is_rgb
    from napari_unet.core.inference import iter_predict
    from napari_unet.core.instances import with_objects
    from napari_unet.core.tta import iter_predict_tta

    warm_up_labels_layer()
    if model is None:
        yield Progress(0, 0, "loading the model")
        model = load_model(DEFAULT)
    members = model.models if isinstance(model, Ensemble) else (model,)
    if is_rgb(image) and any(m.config.in_channels == 1 for m in members):
        yield Notice(f"'{name}' is RGB; converted to grey for the 1-channel model.")
    if isinstance(model, Ensemble):
        maps = yield from iter_predict_ensemble(image, model.models, tta=tta, **options)
    else:
        predict = iter_predict_tta if tta else iter_predict
        maps = yield from predict(image, model, **options)
    if maps.boundary is not None:
        # Splitting touching objects is the slow part of separate labels: made
        # once here, so the threshold slider only follows it.
        yield Progress(0, 0, "splitting touching objects")
        maps = with_objects(maps, model.threshold)
    return model, maps


def warm_up_labels_layer() -> None:
    """Do in this (worker) thread what napari's first Labels layer would do on the main one.

    napari's first Labels layer imports pandas (about 0.3 s here) and, for its
    random label colours, scikit-image's colour conversions (with them
    scipy.linalg, about 50 ms), and its polygon tool's vispy line builds 13
    dash patterns in a Python loop (about 0.1 s idle, more under load), which
    vispy then caches for the process.  All run here, so showing the first
    mask does not freeze the window for them.
    """
    importlib.import_module("pandas")
    importlib.import_module("skimage.color.colorconv")  # skimage.color loads it lazily
    try:
        from vispy.visuals.line.dash_atlas import DashAtlas
    except ImportError:  # another vispy: the warm-up only saves time
        return
    DashAtlas()  # fills vispy's cache of the patterns; later atlases reuse it


#: The modules :func:`load_and_predict` imports, which the widgets do not
#: (with them torch, scipy.ndimage and scikit-image's measures), and the Dice
#: widget's scores (with them scipy.optimize).
PREDICTION_MODULES = (
    "napari_unet.core.checkpoint",
    "napari_unet.core.devices",
    "napari_unet.core.ensemble",
    "napari_unet.core.images",
    "napari_unet.core.inference",
    "napari_unet.core.instances",
    "napari_unet.core.metrics",
    "napari_unet.core.tta",
)
_prefetch: threading.Thread | None = None


def _import_for_prediction() -> None:
    try:
        with collections_paused():
            preload_torch_library()  # the long part of importing torch, without the lock
            for module in PREDICTION_MODULES:
                importlib.import_module(module)
            warm_up_labels_layer()
    except Exception:  # only saves time: the worker imports them again and reports
        return


def prefetch_prediction() -> threading.Thread:
    """Import what the first prediction needs in a background thread, once per process.

    Importing a compiled module holds Python's interpreter lock while it loads
    and initialises.  Started a second after Segment is first shown
    (:func:`prefetch_once_shown`), these imports (torch, about 1.5 s, and
    pandas) happen while the panel is being read, not during the first Run or
    on the main thread.  torch's main library is loaded first with the lock
    released (:func:`napari_unet.core.preload.preload_torch_library`), and
    automatic garbage collections are held off while they run, what they made
    frozen at their end (:func:`napari_unet.gui._gc.collections_paused`): they
    then block the main thread for at most 28-48 ms at a time, against 264-297
    ms warm and 441-447 ms cold without (``bench_import_gap.py``).  A worker
    that starts meanwhile waits for the module it needs.  Returns the
    (possibly finished) thread.
    """
    global _prefetch
    if _prefetch is None:
        _prefetch = threading.Thread(
            target=_import_for_prediction, name="napari-unet-prefetch", daemon=True
        )
        _prefetch.start()
    return _prefetch


#: How long after Segment is first shown its background imports start.
PREFETCH_DELAY_MS = 1000


def prefetch_once_shown(widget: Any, delay_ms: int = PREFETCH_DELAY_MS) -> None:
    """Start :func:`prefetch_prediction` ``delay_ms`` after ``widget`` is first shown.

    Not while the window is first painted: napari draws through PyOpenGL, which
    lets the interpreter lock go at every GL call, and a thread importing at
    the same time takes it each time.  A first paint of the window with an
    image took 305-439 ms here with the imports running against 111-155 ms
    without.  A widget that is never shown leaves the imports to its first Run.
    """
    from qtpy.QtCore import QEvent, QObject, QTimer

    class _OnFirstShow(QObject):
        def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 (Qt's name)
            if event.type() == QEvent.Type.Show:
                watched.removeEventFilter(self)
                QTimer.singleShot(delay_ms, prefetch_prediction)
            return False

    widget.installEventFilter(_OnFirstShow(widget))


def idle_bar(bar: Any) -> Any:
    """Reset and hide a progress bar between runs; return it."""
    bar.setRange(0, 1)
    bar.setValue(0)
    bar.setVisible(False)
    return bar


def tile_size_spin() -> Any:
    """Segment's tile-size box, from the smallest tile worth its overlap to 4096 px."""
    from qtpy.QtWidgets import QSpinBox

    from napari_unet.core.defaults import DEFAULT_TILE_SIZE, MIN_TILE_SIZE

    spin = QSpinBox()
    # Below MIN_TILE_SIZE the tiles, which overlap by twice the network's
    # receptive radius, would spend most of their work on the overlap; a
    # deeper model that needs more raises the size itself, with a notice.
    spin.setRange(MIN_TILE_SIZE, 4096)
    spin.setSingleStep(64)
    spin.setValue(DEFAULT_TILE_SIZE)
    spin.setSuffix(" px")
    spin.setToolTip(
        "Largest tile edge. Tiles overlap by twice the network's receptive radius, "
        "so the result equals one pass over the whole image; larger tiles use more "
        "memory and waste less work on the overlap."
    )
    return spin


def tta_check() -> Any:
    """Segment's test-time augmentation box."""
    from qtpy.QtWidgets import QCheckBox

    check = QCheckBox("Test-time augmentation (8x the time)")
    check.setToolTip(
        "Average the predictions of the 8 flips and 90-degree rotations, and add an "
        "'uncertainty' layer: where they disagree, a correction helps most"
    )
    return check


def uncertainty_name(image: str) -> str:
    """Name of the uncertainty layer of image layer ``image``."""
    return f"{image} uncertainty"


def show_uncertainty(viewer: Any, image: str, uncertainty: np.ndarray, transform: dict) -> Any:
    """Write the TTA uncertainty into its Image layer (made hidden the first time)."""
    from napari.layers import Image

    name = uncertainty_name(image)
    layer = viewer.layers[name] if name in viewer.layers else None
    if isinstance(layer, Image) and layer.data.shape == uncertainty.shape:
        layer.data = uncertainty
        return layer
    top = float(max(np.percentile(uncertainty, 99.9), 1e-6))
    return viewer.add_image(
        uncertainty,
        name=fresh_name(viewer, name),
        colormap="viridis",
        contrast_limits=(0.0, top),
        blending="additive",
        visible=False,
        **transform,
    )


def fill_devices(combo: Any, current: str) -> None:
    """Offer every available device in ``combo`` and select ``current`` (else the first).

    Listing the devices imports torch, about 1.3 s here on the main thread.
    Until Segment's background imports have done that, the box offers
    ``auto`` (and ``current``); it is filled when they end, its choice kept,
    and stays so if they fail.
    """
    if _devices_loaded():
        _add_devices(combo, current)
        return
    combo.addItem("auto", "auto")
    if current != "auto":
        combo.addItem(current, current)
    combo.setCurrentIndex(max(combo.findData(current), 0))
    from qtpy.QtCore import QTimer

    timer = QTimer(combo)
    timer.setInterval(100)

    def check() -> None:
        if _devices_loaded():
            timer.stop()
            chosen = combo.currentData() or current
            combo.clear()
            _add_devices(combo, chosen)
        elif _prefetch is not None and not _prefetch.is_alive():  # they failed: Run says why
            timer.stop()

    timer.timeout.connect(check)
    timer.start()


def _devices_loaded() -> bool:
    """Whether the device module, and torch with it, is fully imported."""
    module = sys.modules.get("napari_unet.core.devices")
    # While a thread imports a module, it is in sys.modules with its spec marked.
    return module is not None and not getattr(module.__spec__, "_initializing", False)


def _add_devices(combo: Any, current: str) -> None:
    from napari_unet.core.devices import available_devices

    for value, label in available_devices():
        combo.addItem(label, value)
    combo.setCurrentIndex(max(combo.findData(current), 0))


def show_progress(event: Any, bar: Any, status: Any, activity: Any, name: str) -> None:
    """Show a prediction event in the widget's bar and status, and napari's activity panel."""
    from napari.utils.notifications import show_info

    if isinstance(event, Notice):
        show_info(f"Segment: {event.message}")
        return
    if not isinstance(event, Progress):
        return
    if event.total > 0:
        bar.setRange(0, event.total)
        bar.setValue(event.step)
    if event.message:
        status.setText(f"Predicting '{name}': {event.message}")
    if activity is None:
        return
    if activity.total != event.total:
        activity.total = event.total
    activity.update(event.step - activity.n)
    activity.set_description(event.message or "Segment")
