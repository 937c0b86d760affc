"""The border weight map's two parameters as a magicgui form."""

from __future__ import annotations

from magicgui.widgets import Container, FloatSpinBox


def weight_params_form() -> Container:
    """Build the form of ``w0`` and ``sigma`` (Ronneberger et al. 2015, eq. 2), paper's values.

    Returns
    -------
    magicgui.widgets.Container
        Its ``w0`` and ``sigma`` widgets are float spin boxes; ``.native`` is
        the Qt widget to put in a layout.
    """
    w0 = FloatSpinBox(
        name="w0",
        label="w0",
        value=10.0,
        min=0.0,
        max=1000.0,
        step=1.0,
        tooltip="Weight of the border term (the paper uses 10).",
    )
    sigma = FloatSpinBox(
        name="sigma",
        label="sigma",
        value=5.0,
        min=0.1,
        max=200.0,
        step=0.5,
        tooltip="Width of the border term in pixels (the paper uses about 5).",
    )
    for spin in (w0, sigma):
        spin.native.setDecimals(1)
    sigma.native.setSuffix(" px")
    form = Container(widgets=[w0, sigma], labels=True)
    form.margins = (0, 0, 0, 0)
    return form
