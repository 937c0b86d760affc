"""``python -m napari_unet.cli``: the ``napari-unet`` command."""

import sys

from napari_unet.cli import main

sys.exit(main())
