"""Synthetic images with exact ground truth: CT-like slices with small nodules, and nuclei.

Two generators, both deterministic for a given seed and cheap enough to run from
napari's sample menu (well under a second for a 512x512 slice).  Only numpy and
scipy are used here, never torch.

CT-like slices (:func:`ct_slice`, :func:`ct_phantom`)
    The small-target case, hard on purpose.  A 512x512 axial slice in
    Hounsfield-like units (float32; air about -1000, lung -900 to -790, fat
    about -100, soft tissue about +40, bone +300 to +900): a body ellipse holds
    two lung fields, a spine and ribs.  About half of the slices hold no nodule;
    the others hold one or two, 3-14 px across, solid or part-solid (a
    ground-glass halo round a solid core), so nodules cover a few hundredths of
    a percent of all pixels.  The lungs also hold thin branching vessels and,
    as distractors, vessel cross-sections: elongated bright ellipses and short
    branch segments with the brightness and size of the nodules, never
    labelled.  Lung density, noise level and noise grain vary from slice to
    slice.  A network trained on uniform patches with plain cross-entropy
    learns to predict "background" everywhere; one that only learns "small and
    bright" marks every vessel.  The lung mask is returned as a region of
    interest.  :class:`CTConfig` sets what a slice may hold (its defaults are
    the hard case).

Fluorescence nuclei (:func:`nuclei_image`)
    Elliptical nuclei with varied brightness and texture, some touching (they
    share a border with no background between them, as in the DSB 2018 masks),
    blurred by a Gaussian point-spread function, with shot and read noise.  Used
    with the shipped DSB 2018 sample to train the default model; the appearance
    (size, contrast, blur, density) is drawn from the seed unless given.
"""

from napari_unet.core.synthetic.ct import CTConfig, CTPhantom, ct_dataset, ct_phantom, ct_slice
from napari_unet.core.synthetic.lung_structures import (
    MAX_NODULE_FRACTION,
    MIN_PART_SOLID_DIAMETER,
    NODULE_MARGIN,
)
from napari_unet.core.synthetic.nuclei import nuclei_image

__all__ = [
    "MAX_NODULE_FRACTION",
    "MIN_PART_SOLID_DIAMETER",
    "NODULE_MARGIN",
    "CTConfig",
    "CTPhantom",
    "ct_dataset",
    "ct_phantom",
    "ct_slice",
    "nuclei_image",
]
