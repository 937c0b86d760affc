"""Fine-tune's training options and augmentation switches as magicgui forms.

Two small :class:`magicgui.widgets.Container` forms: the options one run is
trained with (epochs, time budget, learning rate, loss, validation share,
patch size) and one check box per switch of
:class:`~napari_unet.core.augment_config.AugmentConfig`.  Their values are read
back as ``form.<name>.value``; ``.native`` is the Qt widget to lay out.
"""

from __future__ import annotations

from dataclasses import fields

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox

from napari_unet.core import defaults
from napari_unet.gui._forms import counter

#: Labels of the augmentation switches (field names of ``AugmentConfig``).
AUGMENT_LABELS = {
    "flips": "flips",
    "rot90": "90° rotations",
    "elastic": "elastic",
    "intensity": "gamma / brightness / contrast",
    "noise": "noise",
    "blur": "blur (defocus)",
    "scale": "zoom 0.5-2x",
    "depth": "planes off focus (stacks)",
}


def training_options_form() -> Container:
    """Build the form of one fine-tune's options, at the core's defaults.

    Returns
    -------
    magicgui.widgets.Container
        Widgets ``epochs`` (0: until the time budget is used), ``minutes``
        (0: no limit), ``lr``, ``loss`` (a key of
        :data:`napari_unet.core.defaults.LOSS_DESCRIPTIONS`), ``val_fraction`` and
        ``patch_size``, with labels; read the whole numbers with
        :func:`napari_unet.gui._forms.whole`.
    """
    epochs = counter("epochs", "Epochs", defaults.DEFAULT_EPOCHS, 0, 10_000, 1)
    epochs.native.setSpecialValueText("until the time budget is used")
    minutes = FloatSpinBox(
        name="minutes", label="Time budget", value=0.0, min=0.0, max=24 * 60.0, step=0.5
    )
    minutes.native.setDecimals(1)
    minutes.native.setSpecialValueText("no limit")
    minutes.native.setSuffix(" min")
    lr = FloatSpinBox(
        name="lr",
        label="Learning rate",
        value=defaults.DEFAULT_FINE_TUNE_LR,
        min=1e-6,
        max=1.0,
        step=1e-4,
    )
    lr.native.setDecimals(6)
    lr.value = defaults.DEFAULT_FINE_TUNE_LR  # again, now that six decimals are kept
    losses = defaults.LOSS_DESCRIPTIONS
    loss = ComboBox(name="loss", label="Loss", choices=list(losses), value="default")
    for i, description in enumerate(losses.values()):
        loss.native.setItemData(i, description, 3)  # Qt.ToolTipRole
    val_fraction = FloatSpinBox(
        name="val_fraction",
        label="Validation share",
        value=defaults.DEFAULT_VAL_FRACTION,
        min=0.0,
        max=0.9,
        step=0.05,
    )
    patch_size = counter("patch_size", "Patch size", defaults.DEFAULT_PATCH_SIZE, 16, 2048, 16)
    patch_size.native.setSuffix(" px")
    form = Container(widgets=[epochs, minutes, lr, loss, val_fraction, patch_size], labels=True)
    form.margins = (0, 0, 0, 0)
    return form


def augment_form() -> Container:
    """Build one check box per on/off switch of ``AugmentConfig``, in two columns.

    Returns
    -------
    magicgui.widgets.Container
        Two column containers; :func:`augment_switches` reads the boxes.
    """
    from napari_unet.core.augment_config import AugmentConfig

    checks = [
        CheckBox(name=f.name, text=AUGMENT_LABELS.get(f.name, f.name.replace("_", " ")),
                 value=f.default)
        for f in fields(AugmentConfig)
        if isinstance(f.default, bool)
    ]  # fmt: skip
    columns = [Container(widgets=checks[i::2], labels=False, name=f"column_{i}") for i in range(2)]
    form = Container(widgets=columns, layout="horizontal", labels=False)
    form.margins = (0, 0, 0, 0)
    for column in columns:
        column.margins = (0, 0, 0, 0)
        column.native.layout().addStretch(1)  # rows of both columns at the same height
    return form


def augment_switches(form: Container) -> dict[str, CheckBox]:
    """Return the check boxes of :func:`augment_form` by ``AugmentConfig`` field name."""
    return {check.name: check for column in form for check in column}
