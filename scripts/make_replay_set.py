"""Write the replay set shipped with the default model (``napari_unet/models/default_replay.npz``).

It holds 16 images of the development part of the DSB 2018 development set
(8 fluorescence, 4 H&E histology, 4 brightfield, the last cropped to 512 x
512; chosen with a fixed seed by ``benchmarks/datasets.dev_replay``) with
their instance labels: images the default model trained on, never held-out
ones.  Fine-tuning mixes patches of them into its batches so that the model
does not forget them (:mod:`napari_unet.core.replay`)::

    .venv/bin/python scripts/make_replay_set.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from datasets import dev_replay  # noqa: E402

from napari_unet.core.replay import default_replay_path, save_replay  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=default_replay_path())
    args = parser.parse_args(argv)
    images, labels = dev_replay()
    path = save_replay(args.out, images, [lab.astype("uint16") for lab in labels])
    sizes = ", ".join(f"{im.shape}" for im in images)
    print(f"{path}: {len(images)} images ({sizes}), {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
