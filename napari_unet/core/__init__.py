"""Numerical core of napari-unet: numpy, scipy, scikit-image and torch only.

Nothing in this package imports napari or a Qt binding (an import-linter
contract in ``pyproject.toml`` enforces it), so scripts, the command line,
tests and cluster jobs use it without a display.  Submodules are imported
explicitly (``from napari_unet.core import inference``) so that importing the
package itself stays cheap.
"""
