"""Hand-crafted features of one grayscale patch: intensity statistics, GLCM (Haralick), LBP, mask shape.

The feature set of the classical baseline (``mammocad.models.classical``), after the 1990s
mammography CAD pipelines: first-order intensity statistics, grey-level co-occurrence (Haralick)
texture and local binary patterns (scikit-image), plus shape descriptors of the lesion mask
when one is given. Every function is pure and takes ``pixels``: a 2-D float array (rows, cols)
of grayscale values in [0, 1] (a patch as the patch datasets give it, already resized).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern
from skimage.measure import label, regionprops

GLCM_LEVELS = 32  # grey levels the patch is quantised to for the co-occurrence matrices
GLCM_DISTANCES = (1, 3, 5)  # px
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)  # radians
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
LBP_SCALES = ((8, 1.0), (16, 2.0))  # (points P, radius R px), rotation-invariant uniform patterns
PERCENTILES = (5, 25, 50, 75, 95)
SHAPE_NAMES = ("area_fraction", "perimeter_ratio", "eccentricity", "solidity", "extent", "axis_ratio")


def intensity_features(pixels: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation, skewness, kurtosis, percentiles and 64-bin entropy of the values."""
    values = pixels.ravel().astype(np.float64)
    hist = np.histogram(values, bins=64, range=(0.0, 1.0))[0] / values.size
    flat = values.std() < 1e-12  # skewness and kurtosis are undefined for a constant patch
    out = {"mean": values.mean(), "std": values.std(),
           "skew": 0.0 if flat else float(stats.skew(values)),
           "kurtosis": 0.0 if flat else float(stats.kurtosis(values)),
           "entropy": float(-(hist[hist > 0] * np.log2(hist[hist > 0])).sum())}
    out.update({f"p{q}": v for q, v in zip(PERCENTILES, np.percentile(values, PERCENTILES))})
    return {f"intensity_{k}": float(v) for k, v in out.items()}


def glcm_features(pixels: np.ndarray) -> dict[str, float]:
    """Haralick-style GLCM properties per distance: mean and range over the four directions.

    The patch is quantised to ``GLCM_LEVELS`` levels over [0, 1]; matrices are symmetric and
    normalised (scikit-image ``graycomatrix``/``graycoprops``).
    """
    quantised = np.clip((pixels * GLCM_LEVELS).astype(np.int64), 0, GLCM_LEVELS - 1).astype(np.uint8)
    glcm = graycomatrix(quantised, distances=GLCM_DISTANCES, angles=GLCM_ANGLES, levels=GLCM_LEVELS,
                        symmetric=True, normed=True)
    out = {}
    for prop in GLCM_PROPS:
        values = np.nan_to_num(graycoprops(glcm, prop))  # (distances, angles); correlation of a flat patch: 0
        for d, row in zip(GLCM_DISTANCES, values):
            out[f"glcm_{prop}_d{d}_mean"] = float(row.mean())
            out[f"glcm_{prop}_d{d}_range"] = float(row.max() - row.min())
    return out


def lbp_features(pixels: np.ndarray) -> dict[str, float]:
    """Normalised histograms of rotation-invariant uniform LBP codes (P + 2 bins) at each scale."""
    image = np.round(pixels * 255).astype(np.uint8)
    out = {}
    for points, radius in LBP_SCALES:
        codes = local_binary_pattern(image, points, radius, method="uniform")
        hist = np.bincount(codes.astype(np.int64).ravel(), minlength=points + 2) / codes.size
        out.update({f"lbp_p{points}_r{radius:g}_{k}": float(v) for k, v in enumerate(hist)})
    return out


def shape_features(mask: np.ndarray) -> dict[str, float]:
    """Shape of the largest connected region of a 2-D boolean lesion ``mask`` (same grid as the patch).

    ``area_fraction``: region area / patch area; ``perimeter_ratio``: perimeter^2 / (4 pi area)
    (1 for a disc, larger for irregular and spiculated outlines); ``eccentricity``, ``solidity``,
    ``extent`` as scikit-image's ``regionprops``; ``axis_ratio``: minor / major axis length. An
    empty mask gives zeros.
    """
    regions = regionprops(label(np.asarray(mask, dtype=bool)))
    if not regions:
        return {f"shape_{k}": 0.0 for k in SHAPE_NAMES}
    region = max(regions, key=lambda r: r.area)
    values = (region.area / mask.size, region.perimeter ** 2 / (4 * np.pi * region.area), region.eccentricity,
              region.solidity, region.extent,
              region.axis_minor_length / region.axis_major_length if region.axis_major_length else 1.0)
    return {f"shape_{k}": float(v) for k, v in zip(SHAPE_NAMES, values)}


def patch_features(pixels: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """All features of one patch (name -> value, fixed order); shape features only when ``mask`` is given."""
    pixels = np.asarray(pixels, dtype=np.float64)
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale patch, got shape {pixels.shape}")
    features = {**intensity_features(pixels), **glcm_features(pixels), **lbp_features(pixels)}
    if mask is not None:
        features.update(shape_features(mask))
    return features
