"""napari-unet: U-Net segmentation, correction and fine-tuning inside napari.

This module imports nothing heavy (no torch, no Qt) so that napari's plugin
menu and sample loading stay fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
