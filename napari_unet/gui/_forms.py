"""Small magicgui pieces: whole-number boxes, and Segment's mask options form."""

from __future__ import annotations

from magicgui.widgets import CheckBox, Container, FloatSpinBox


def counter(name: str, label: str, value: int, low: int, high: int, step: int) -> FloatSpinBox:
    """Build a whole-number box that can show a word for its minimum and a unit.

    magicgui's ``SpinBox`` (superqt's large-integer box) has neither a
    special-value text nor a suffix, so whole numbers use a float box with no
    decimals; :func:`whole` reads them back as ``int``.
    """
    box = FloatSpinBox(name=name, label=label, min=low, max=high, step=step)
    box.native.setDecimals(0)
    box.value = value
    return box


def whole(box: FloatSpinBox) -> int:
    """Return the value of a :func:`counter` box as an ``int``."""
    return int(round(box.value))


def mask_options_form() -> Container:
    """Build Segment's mask options: smallest object, fill holes, separate labels.

    Returns
    -------
    magicgui.widgets.Container
        Widgets ``min_size`` (pixels, 0: keep every object; read it with
        :func:`whole`), ``fill_holes`` and ``separate``, with labels.
    """
    min_size = counter("min_size", "Min object size", 0, 0, 1_000_000, 1)
    min_size.native.setSuffix(" px")
    fill = CheckBox(name="fill_holes", text="Fill holes", label="")
    separate = CheckBox(name="separate", text="Show objects as separate labels", label="")
    form = Container(widgets=[min_size, fill, separate], labels=True)
    form.margins = (0, 0, 0, 0)
    return form
