"""Qt widgets of napari-unet: thin adapters that call ``napari_unet.core``."""
