"""The switches and strengths of the augmentations (:mod:`napari_unet.core.augment`).

Kept apart from the augmentations themselves so that the forms and the
training configuration read them without importing scipy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """Switches and strengths of the augmentations.

    Attributes
    ----------
    flips
        Random horizontal and vertical flips.
    rot90
        Random rotation by a multiple of 90 degrees.
    elastic
        Elastic deformation (coarse-grid random displacements).
    intensity
        Random gamma, brightness and contrast on the image.
    noise
        Additive Gaussian noise on the image.
    blur
        Defocus: a Gaussian blur of the image, mask unchanged, with extra
        noise, as on a dim, out-of-focus plane whose per-image
        normalisation stretches its noise along with its faint signal.
    scale
        Random zoom in or out about the patch centre (objects larger or
        smaller than in the training images), applied with the elastic
        deformation in one resampling.
    depth
        Planes away from the ones corrected, for slices of a stack: a share
        (``depth_p``) of the defocus blurs also shrink every object to its
        cross-section at a random relative depth ``t`` (radius times
        ``sqrt(1 - t**2)``, an ellipsoid's), blur more the deeper the plane
        and dim it.  In a confocal or widefield stack a plane off a nucleus'
        equator shows that equator's out-of-focus light, wider than its own
        smaller cross-section, which is the truth there
        (:func:`deepen_target`).
    elastic_grid
        Number of control points per axis of the displacement grid.
    elastic_sigma
        Standard deviation of the control-point displacements, in pixels.
    elastic_p
        Probability of deforming a given patch.
    gamma_range, contrast_range
        Ranges of the random gamma exponent and contrast factor.
    brightness
        Largest absolute brightness shift (in normalised units, where the
        image's 1st-99.8th percentile range spans 0-1).
    noise_std
        Largest standard deviation of the added noise (normalised units).
    intensity_p, noise_p
        Probabilities of the intensity change and of the noise.
    blur_sigma, blur_p, blur_noise
        Range of the blur's standard deviation in pixels, its probability,
        and the largest standard deviation of the noise added with it.
    scale_range, scale_p
        Range of the zoom factor (drawn log-uniformly; 2 doubles object
        sizes), and its probability.
    depth_p, depth_max
        Share of the defocus blurs that also shrink the objects, and the
        largest relative depth drawn (uniformly from 0).
    """

    flips: bool = True
    rot90: bool = True
    elastic: bool = True
    intensity: bool = True
    noise: bool = True
    blur: bool = True
    scale: bool = True
    depth: bool = False
    elastic_grid: int = 3
    elastic_sigma: float = 10.0
    elastic_p: float = 0.5
    gamma_range: tuple[float, float] = (0.7, 1.5)
    brightness: float = 0.1
    contrast_range: tuple[float, float] = (0.75, 1.25)
    intensity_p: float = 0.5
    noise_std: float = 0.05
    noise_p: float = 0.3
    blur_sigma: tuple[float, float] = (0.5, 5.0)
    blur_p: float = 0.3
    blur_noise: float = 0.15
    scale_range: tuple[float, float] = (0.5, 2.0)
    scale_p: float = 0.5
    depth_p: float = 1.0
    depth_max: float = 0.9

    @classmethod
    def none(cls) -> AugmentConfig:
        """Return a configuration with every augmentation switched off."""
        return cls(
            flips=False,
            rot90=False,
            elastic=False,
            intensity=False,
            noise=False,
            blur=False,
            scale=False,
            depth=False,
        )
