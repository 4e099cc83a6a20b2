"""The image operations of the CBIS-DDSM preprocessing (paper appendix 9.1), one job each.

Every function is pure: it returns a new array and never modifies its input.

Conventions used throughout:

- arrays are 2-D and indexed ``[row, col]``; shapes are ``(rows, cols)``; sizes are pixels of the
  array passed in;
- raw images are ``uint16`` (DICOM) or ``uint8`` (PNG/PGM); *normalised* images are ``float32``
  in [0, 1]; masks are ``uint8`` with values 0 and 255 (255 = inside);
- OpenCV takes sizes as ``(width, height)`` = ``(cols, rows)``; the conversion happens here, so
  callers only ever see ``(rows, cols)``.

The order in which :mod:`mammocad.preprocess.pipeline` applies them follows the widely used
CBIS-DDSM pipeline (normalise, breast mask, flip so the chest wall is on the left, CLAHE, pad
to square, resize), except that the breast mask is found on the full image first and the
border crop then removes only border rows/cols without breast or lesion (the reference pipeline crops a
fixed 4%/1% first, which cuts tissue and lesions wherever the breast reaches the image edge).

Sizes of structuring elements and distances are given as fractions of the image's longer side
(:func:`kernel_px`), so a mask computed at any resolution is the same up to scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np


# ---- border zone and crop -------------------------------------------------------------------------
@dataclass(frozen=True)
class CropFractions:
    """Depth of the *border zone* at each side, as a fraction of the rows/cols, each in [0, 0.5).

    The border zone is where scans carry their artefacts (film labels, bright film edges,
    scanner borders). It is no longer cut away blindly (that removed breast tissue and lesions
    wherever the breast reaches the image edge, as in most MLO views). Instead, see
    :func:`breast_mask` and :func:`crop_window`:

    - breast found inside the zone counts only where it continues the breast found outside it
      (straight across the zone, through pixels above the threshold), so a border band cannot
      join the breast or connect a label to it;
    - bright film-edge strips are looked for there (:func:`film_edge_strips`);
    - the crop removes only the rows/cols of the zone that hold no breast.

    Defaults: 4% top and bottom, 1% left and right (where DDSM scans have their labels and strips).
    """

    left: float = 0.01
    right: float = 0.01
    top: float = 0.04
    bottom: float = 0.04

    def __post_init__(self) -> None:
        for side in ("left", "right", "top", "bottom"):
            value = getattr(self, side)
            if not 0.0 <= value < 0.5:
                raise ValueError(f"crop fraction {side}={value} is outside [0, 0.5)")


def _border_px(size: int, fraction: float) -> int:
    # floor(size * fraction) as the reference pipeline's int(); the epsilon keeps products
    # like 100 * 0.29 = 28.999999999999996 from losing a pixel to float error.
    return int(size * fraction + 1e-9)


def inner_window(shape: tuple[int, int], fractions: CropFractions = CropFractions()) -> tuple[slice, slice]:
    """The (row slice, col slice) of an image of ``shape`` that lies inside the border zone.

    Each side's zone is ``floor(size * fraction)`` pixels deep. Fractions below 0.5 each way
    always leave at least one row and one column inside. (This is the window the reference
    pipeline crops to.)
    """
    rows, cols = shape
    return (
        slice(_border_px(rows, fractions.top), rows - _border_px(rows, fractions.bottom)),
        slice(_border_px(cols, fractions.left), cols - _border_px(cols, fractions.right)),
    )


def crop_window(breast: np.ndarray, fractions: CropFractions = CropFractions(),
                keep: Sequence[np.ndarray] = ()) -> tuple[slice, slice]:
    """The (row slice, col slice) kept by the border crop: no breast or ``keep`` pixel is ever cut.

    ``breast``: 0/255 (or bool) breast mask of the full image; ``keep``: more masks of its shape
    whose pixels must survive too (the lesion masks: a lesion outline may reach past the skin
    line). At each side, the rows/cols of the border zone (:func:`inner_window`) that hold no
    pixel of these masks are cropped, the others kept; nothing outside the zone is cropped. A
    kept pixel ``(r, c)`` of the input is ``(r - start_row, c - start_col)`` in the crop. Empty
    masks give the inner window.
    """
    inner_rows, inner_cols = inner_window(breast.shape, fractions)
    rows_any, cols_any = breast.any(axis=1), breast.any(axis=0)
    for mask in keep:
        rows_any |= mask.any(axis=1)
        cols_any |= mask.any(axis=0)
    rows_with, cols_with = np.flatnonzero(rows_any), np.flatnonzero(cols_any)
    if rows_with.size == 0:
        return inner_rows, inner_cols
    return (
        slice(min(inner_rows.start, int(rows_with[0])), max(inner_rows.stop, int(rows_with[-1]) + 1)),
        slice(min(inner_cols.start, int(cols_with[0])), max(inner_cols.stop, int(cols_with[-1]) + 1)),
    )


# ---- intensities ----------------------------------------------------------------------------------
def normalize(image: np.ndarray, reference: tuple[slice, slice] | None = None) -> np.ndarray:
    """Min-max scale to float32 [0, 1]: the darkest pixel becomes 0, the brightest 1.

    ``reference``: a (row slice, col slice) window; when given, the darkest and brightest
    pixels are taken inside it only and the whole image is scaled with them, values outside
    [0, 1] clipped (e.g. a saturated film edge in the border zone becomes 1 without compressing
    the breast's range). A constant reference has no contrast to scale: the image becomes all
    zeros (and then yields no breast). Accepts any real dtype (uint8, uint16, float).
    """
    low, high, _, _ = cv2.minMaxLoc(image if reference is None else image[reference])
    if high == low:
        return np.zeros(image.shape, np.float32)
    out = image.astype(np.float32)
    # In place: a 4000x3000 image would otherwise make two more 48 MB temporaries.
    out -= np.float32(low)
    out *= np.float32(1.0 / (high - low))
    if reference is not None:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def to_uint(norm: np.ndarray, bits: int) -> np.ndarray:
    """float [0, 1] -> uint8 (``bits=8``, 0..255) or uint16 (``bits=16``, 0..65535).

    Rounds to the nearest level; values outside [0, 1] saturate.
    """
    dtype = {8: np.uint8, 16: np.uint16}[bits]
    top = np.float32((1 << bits) - 1)
    scaled = norm * top
    np.clip(scaled, 0, top, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(dtype)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 [0, 1], dividing by the dtype's full scale (255 or 65535)."""
    out = image.astype(np.float32)
    out *= np.float32(1.0 / np.iinfo(image.dtype).max)
    return out


# ---- masks ----------------------------------------------------------------------------------------
def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest blob of a 0/255 uint8 mask, holes filled; all zeros if none.

    "Largest" is by the area inside the outer contour (as in the reference pipeline), and the
    blob is redrawn filled, so dark fatty tissue enclosed by the breast stays inside it.
    """
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(mask)
    if contours:
        largest = max(contours, key=cv2.contourArea)
        cv2.drawContours(out, [largest], -1, 255, thickness=cv2.FILLED)
    return out


def _rect(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))


def _grow(mask: np.ndarray, distance: float) -> np.ndarray:
    """0/255 ``mask`` grown by a disc of radius ``distance`` px (a distance transform: fast for
    any radius, where a large elliptic kernel is not)."""
    if not mask.any():
        return mask
    return (cv2.distanceTransform(cv2.bitwise_not(mask), cv2.DIST_L2, cv2.DIST_MASK_5) <= distance).view(
        np.uint8) * np.uint8(255)


def kernel_px(fraction: float, shape: tuple[int, int]) -> int:
    """A length given as a ``fraction`` of the longer side of ``shape``, in pixels of that image:
    the nearest odd integer (a square of that side has a centre pixel), at least 1."""
    return max(1, 2 * round((fraction * max(shape) - 1) / 2) + 1)


def reconstruct(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 8-connected blobs of ``mask`` that contain a nonzero pixel of ``seeds``; 0/255 uint8.

    Morphological reconstruction by dilation, computed exactly from connected components.
    Both inputs: same shape, nonzero = set.
    """
    count, labels = cv2.connectedComponents((mask != 0).view(np.uint8), connectivity=8)
    hit = np.zeros(count, bool)
    hit[np.unique(labels[(seeds != 0) & (mask != 0)])] = True
    hit[0] = False
    return hit[labels].view(np.uint8) * np.uint8(255)


# Film-edge strips (see film_edge_strips): near-saturated after normalisation, covering at least
# half of a line of the border zone, and followed inward at most this deep.
STRIP_LEVEL = 0.9
STRIP_LINE_FRACTION = 0.5
STRIP_MAX_DEPTH = 0.05  # of the rows (top/bottom strips) or cols (left/right strips)
STRIP_MARGIN = 0.005  # of the longer side: strips are removed with their blurred inner edge


def film_edge_strips(norm: np.ndarray, zone: CropFractions = CropFractions(), level: float = STRIP_LEVEL,
                     line_fraction: float = STRIP_LINE_FRACTION, max_depth: float = STRIP_MAX_DEPTH,
                     margin: float = STRIP_MARGIN) -> np.ndarray:
    """Bright film-edge strips along the image edges: uint8 0/255, same shape as ``norm``.

    ``norm``: float32 [0, 1]. A strip is a long thin band of near-saturated pixels (``>= level``)
    along an edge, as the unexposed film border of a scanned film. Profile test: a line of the
    border ``zone`` (a row of the top/bottom zone, a col of the left/right zone) is a strip
    line when at least ``line_fraction`` of its pixels are near-saturated. The strip is every
    near-saturated pixel connected to a strip line without going deeper than ``max_depth`` (a
    fraction of the rows or cols) from the image edges, so a band that widens along the edge
    (a film edge scanned at a slant) is followed, and saturated tissue further in is not.
    Returned grown by ``margin`` times the longer side, to include the strip's blurred edge.
    """
    rows, cols = norm.shape
    inner_rows, inner_cols = inner_window(norm.shape, zone)
    margin_px = margin * max(rows, cols)
    out = np.zeros(norm.shape, np.uint8)
    # One edge at a time, transposed so that the edge is the top row: (zone depth, reach, size).
    for zone_depth, size, view in ((inner_rows.start, rows, lambda a: a), (rows - inner_rows.stop, rows, np.flipud),
                                   (inner_cols.start, cols, lambda a: a.T), (cols - inner_cols.stop, cols,
                                                                             lambda a: np.flipud(a.T))):
        if zone_depth == 0:
            continue
        reach = min(size, max(zone_depth, int(max_depth * size)))
        band = slice(0, min(size, reach + int(np.ceil(margin_px)) + 1))
        bright = cv2.compare(np.ascontiguousarray(view(norm)[band]), float(level), cv2.CMP_GE)
        lines = bright[:zone_depth].mean(axis=1) >= 255 * line_fraction  # the profile test, one value per line
        if not lines.any():
            continue
        seeds = np.zeros_like(bright)
        seeds[:zone_depth][lines] = bright[:zone_depth][lines]
        bright[reach:] = 0
        strip = _grow(reconstruct(bright, seeds), margin_px)
        target = view(out)[band]  # a view into out
        np.maximum(target, strip, out=target)
    return out


# Labels (see labels_on_film), lengths as fractions of the longer side.
LABEL_LEVEL = 0.6  # label ink/paper is at least this bright
LABEL_MIN_SIZE = 0.01  # blob area >= (this * side)**2: not a calcification or noise ...
LABEL_MAX_SIZE = 0.15  # ... and <= (this * side)**2: larger bright regions are tissue or film borders
LABEL_RING = (0.003, 0.01)  # the ring around a blob, past its blurred rim ...
LABEL_RING_DIM = 0.3  # ... is at least 3/4 below this: a sharp edge onto dim ground
LABEL_CONTEXT = 0.03  # within this distance ...
LABEL_CONTEXT_BACKGROUND = 0.05  # ... at least this share of the pixels is background
LABEL_MARGIN = 0.02  # labels are removed with this margin (rim, sticker under the characters)
LABEL_WORK_SIDE = 1024  # px: larger images are searched at this longer side (the rules are fractions)


def labels_on_film(norm: np.ndarray, threshold: float = 0.1, level: float = LABEL_LEVEL,
                   min_size: float = LABEL_MIN_SIZE, max_size: float = LABEL_MAX_SIZE,
                   ring: tuple[float, float] = LABEL_RING,
                   ring_dim: float = LABEL_RING_DIM, context: float = LABEL_CONTEXT,
                   context_background: float = LABEL_CONTEXT_BACKGROUND, margin: float = LABEL_MARGIN) -> np.ndarray:
    """Film labels and markers, wherever they lie (also on the skin line): uint8 0/255, same shape.

    ``norm``: float32 [0, 1]; lengths are fractions of the image's longer side ``side``. A
    label is a blob of bright pixels (``>= level``, 8-connected, holes filled, area from
    ``(min_size * side)**2`` to ``(max_size * side)**2``; larger bright regions are tissue, or
    film borders left to :func:`film_edge_strips` and the largest-blob rule of
    :func:`breast_mask`) with a sharp edge onto dim ground, which tissue does not have
    (tissue fades gradually towards the skin line, and its bright parts sit in tissue):

    - in the ring from ``ring[0] * side`` to ``ring[1] * side`` px around the blob (past its
      blurred rim), at least 3/4 of the pixels are ``< ring_dim``; pixels at exactly 0 (the
      image minimum, e.g. the zero padding around a digitised film) do not count, so tissue
      cut by the film edge is not taken for a label;
    - at least ``context_background`` of the pixels within ``context * side`` px of the blob
      are background (``< threshold``): labels lie on the film or on the skin line.

    Returned: the labels grown by ``margin * side`` px, so their rim and the sticker paper
    right under the characters go too. An image larger than ``LABEL_WORK_SIDE`` px is searched
    shrunk to that longer side (area averaging) and the result enlarged back (nearest), which
    the rules, all in fractions of the side, allow: 4000-px scans take a sixteenth of the time.
    """
    if max(norm.shape) > LABEL_WORK_SIDE:
        rows, cols = resized_shape(norm.shape, LABEL_WORK_SIDE)
        small = cv2.resize(norm, (cols, rows), interpolation=cv2.INTER_AREA)
        found = labels_on_film(small, threshold, level, min_size, max_size, ring, ring_dim, context,
                               context_background, margin)
        return cv2.resize(found, (norm.shape[1], norm.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    side = max(norm.shape)
    bright = cv2.compare(norm, float(level), cv2.CMP_GE)
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rim_px, ring_px, context_px, margin_px = (max(1.0, f * side) for f in (*ring, context, margin))
    pad = int(np.ceil(max(context_px, margin_px)))
    out = np.zeros_like(bright)
    for contour in contours:  # a loop over blobs; few have a label's size
        if not (min_size * side) ** 2 <= cv2.contourArea(contour) <= (max_size * side) ** 2:
            continue
        x, y, w, h = cv2.boundingRect(contour)
        top, left = max(0, y - pad), max(0, x - pad)
        box = (slice(top, y + h + pad), slice(left, x + w + pad))
        values = norm[box]
        blob = np.zeros(values.shape, np.uint8)
        cv2.drawContours(blob, [contour], -1, 255, thickness=cv2.FILLED, offset=(-left, -top))
        # Distance of every pixel of the box to the blob (px); 0 on the blob.
        distance = cv2.distanceTransform(cv2.bitwise_not(blob), cv2.DIST_L2, cv2.DIST_MASK_3)
        ring_pixels = values[(distance > rim_px) & (distance <= ring_px)]
        ring_pixels = ring_pixels[ring_pixels > 0]  # not the image minimum: padding outside the film
        around = values[(distance > 0) & (distance <= context_px)]
        if (ring_pixels.size and np.percentile(ring_pixels, 75) < ring_dim
                and (around < threshold).mean() >= context_background):
            out[box] |= (distance <= margin_px).view(np.uint8) * np.uint8(255)  # grown by the margin
    return out


def _extend_across_zone(core: np.ndarray, allowed: np.ndarray, inner: tuple[slice, slice],
                        close: np.ndarray) -> np.ndarray:
    """``core`` (0 in the border zone) grown straight across the zone to the image edge, through
    ``allowed`` pixels only: along columns into the top/bottom zone, then along rows into the
    left/right zone (so corners are reached too). ``allowed`` is first closed with the ``close``
    kernel in each zone, so a dark scan line across the breast does not stop the growth."""
    out = core.copy()
    margin = close.shape[0]
    for axis, window in ((0, inner[0]), (1, inner[1])):
        grown, path = (out, allowed) if axis == 0 else (out.T, allowed.T)  # views: rows first
        size = grown.shape[0]
        sides = []
        if window.start > 0:  # top/left zone, walked from the inner window outwards
            sides.append((window.start, slice(0, window.start), slice(window.start - 1, None, -1)))
        if window.stop < size:  # bottom/right zone
            sides.append((window.stop - 1, slice(window.stop, size), slice(window.stop, size)))
        for boundary, zone, walk in sides:
            # The zone plus a margin of the inner window, closed (contiguous copy: OpenCV wants one).
            band = slice(max(0, zone.start - margin), min(size, zone.stop + margin))
            closed = cv2.morphologyEx(np.ascontiguousarray(path[band]), cv2.MORPH_CLOSE, close)
            outwards = closed[walk.start - band.start::walk.step or 1][:zone.stop - zone.start]
            # A zone pixel joins when its line from the boundary pixel on is allowed all the way.
            joined = np.cumprod(outwards > 0, axis=0, dtype=np.uint8) & (grown[boundary] > 0)
            grown[walk] |= joined * np.uint8(255)
    return out


def breast_mask(norm: np.ndarray, threshold: float = 0.1, open_size: float = 0.00575, dilate_size: float = 0.00575,
                zone: CropFractions = CropFractions()) -> np.ndarray:
    """The breast region of a normalised full (uncropped) image: uint8 0/255, same shape.

    ``norm``: float32 [0, 1] (output of :func:`normalize`). ``open_size`` and ``dilate_size``
    are the sides of square kernels as fractions of the image's longer side (:func:`kernel_px`;
    the default 0.00575 is the reference pipeline's 23 px on a 4000-px scan, 5 px on a
    1024-px mini-MIAS image), so the mask is the same at any resolution, up to scale. Steps:

    1. pixels ``>= threshold``, minus film-edge strips (:func:`film_edge_strips`) and film
       labels (:func:`labels_on_film`, also those stuck on the skin line);
    2. opening with the ``open_size`` square removes thin structures (text, lines, noise);
    3. the largest blob (holes filled, :func:`largest_component`) of what lies inside the
       border ``zone`` (:class:`CropFractions`) is the breast; it is grown straight across the
       zone to the image edge through opened pixels (closed with the ``dilate_size`` square, so
       a dark scan line does not stop it), so breast reaching the edge is kept in full while a
       band along the edge cannot join it;
    4. dilation with the ``dilate_size`` square grows it back over the skin line; largest blob
       again, holes filled; strips and labels are removed once more (a label lying on the
       breast leaves a notch or hole in the mask rather than staying in the image).
    """
    shape = norm.shape
    artefacts = cv2.bitwise_or(film_edge_strips(norm, zone), labels_on_film(norm, threshold))
    binary = cv2.compare(norm, float(threshold), cv2.CMP_GE)
    binary[artefacts > 0] = 0
    opened = cv2.morphologyEx(binary, cv2.MORPH_OPEN, _rect(kernel_px(open_size, shape)))
    inner = inner_window(shape, zone)
    interior = np.zeros_like(opened)
    interior[inner] = opened[inner]
    grow = _rect(kernel_px(dilate_size, shape))
    core = _extend_across_zone(largest_component(interior), opened, inner, grow)
    breast = largest_component(cv2.dilate(core, grow))
    breast[artefacts > 0] = 0
    breast = largest_component(breast)  # a label cut off a piece of the breast: keep the largest
    breast[artefacts > 0] = 0  # and refilling its outline must not bring an enclosed label back
    return breast


def apply_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` where ``mask`` is nonzero, 0 elsewhere; same shape and dtype as ``image``."""
    return cv2.copyTo(image, mask, np.zeros_like(image))


# ---- orientation ----------------------------------------------------------------------------------
def should_flip(image: np.ndarray) -> bool:
    """True when the breast faces the wrong way: more signal in the right half than the left.

    Works on a (masked) image of any dtype or on a 0/255 mask: compares the sums of the
    left and right halves of the columns (the middle column of an odd width counts for
    neither). The output convention is chest wall on the LEFT, breast extending right; the
    chest-wall side holds most of the breast's area and brightness. Ties do not flip.
    """
    column_sums = image.sum(axis=0, dtype=np.float64)
    half = image.shape[1] // 2
    return bool(column_sums[:half].sum() < column_sums[image.shape[1] - half:].sum())


def flip_horizontal(image: np.ndarray) -> np.ndarray:
    """Mirror left-right: input column ``c`` becomes column ``cols - 1 - c``; any dtype."""
    return cv2.flip(image, 1)


# ---- contrast -------------------------------------------------------------------------------------
def clahe(norm: np.ndarray, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8),
          hist_bits: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation; float32 [0, 1] in and out.

    ``tile_grid``: number of tiles along (rows, cols). ``clip_limit``: OpenCV's, a multiple
    of a tile's mean histogram bin count. ``hist_bits`` (8..16): histogram resolution; the
    image is equalised as uint16 with 2**hist_bits bins (``CLAHE.setBitShift``, OpenCV >=
    4.13), and the output has 2**hist_bits grey levels instead of 8-bit CLAHE's 256.

    Why not always 16: the clip limit is relative to the mean bin count, so it means what it
    means in the 8-bit reference pipeline only while the occupied bins are dense and well
    filled. CBIS-DDSM DICOMs are 16-bit files holding only ~2000-4000 distinct levels (12-bit
    scans, stretched), so most of 65536 bins are empty and the same clip limit equalises
    differently: on a 4000x3000 mammogram with levels 25 apart the output differs from 8-bit
    CLAHE by 0.078 of full scale on average at 16 bits, 0.022 at 12, 0.003 at 10 (within one
    8-bit level) while keeping 4x finer levels. ``hist_bits=8`` matches OpenCV's 8-bit CLAHE
    to within one level.
    """
    engine = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(tile_grid[1], tile_grid[0]))
    engine.setBitShift(16 - hist_bits)
    return to_float(engine.apply(to_uint(norm, 16)))


# ---- geometry -------------------------------------------------------------------------------------
def pad_to_square(image: np.ndarray) -> np.ndarray:
    """Zero-pad on the right (if rows > cols) or at the bottom (if cols > rows) to a square.

    With the chest wall on the left the padding lands away from the breast, and no existing
    pixel moves: pixel ``(r, c)`` keeps its coordinates. Any dtype; shape ``(n, n)`` with
    ``n = max(rows, cols)``.
    """
    rows, cols = image.shape
    side = max(rows, cols)
    return cv2.copyMakeBorder(image, 0, side - rows, 0, side - cols, cv2.BORDER_CONSTANT, value=0)


def resized_shape(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """(rows, cols) after scaling ``shape`` so its longer side is ``size`` px, aspect kept."""
    rows, cols = shape
    scale = size / max(rows, cols)
    return max(1, round(rows * scale)), max(1, round(cols * scale))


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """``pixels`` (rows, cols) resized to size x size px, aspect not kept: INTER_AREA along an
    axis that shrinks, INTER_LINEAR along one that grows. The one resampling of patches (large
    context, segmentation) and of model inputs (training, validation, inference)."""
    rows, cols = pixels.shape
    row_method, col_method = _interpolation(rows, size), _interpolation(cols, size)
    if row_method == col_method:
        return cv2.resize(pixels, (size, size), interpolation=row_method)
    # One axis shrinks, the other grows: cv2 only averages (INTER_AREA) when both shrink, and
    # bilinear aliases when shrinking, so each axis gets its own pass.
    resized_rows = cv2.resize(pixels, (cols, size), interpolation=row_method)
    return cv2.resize(resized_rows, (size, size), interpolation=col_method)


def _interpolation(source: int, target: int) -> int:
    return cv2.INTER_AREA if target < source else cv2.INTER_LINEAR


def resize(image: np.ndarray, size: int, *, mask: bool = False) -> np.ndarray:
    """Scale so the longer side is ``size`` px (a square becomes ``size`` x ``size``).

    Images (any dtype): area averaging when shrinking (no aliasing), bilinear when
    enlarging. Masks (``mask=True``): nearest neighbour, so a 0/255 mask stays 0/255; OpenCV's
    NEAREST_EXACT samples at pixel centres like the image interpolations, so masks and image
    stay aligned (plain NEAREST is off by up to half a source pixel). A lesion smaller than
    the scale step can vanish; the pipeline reports that.
    """
    rows, cols = resized_shape(image.shape, size)
    if mask:
        interpolation = cv2.INTER_NEAREST_EXACT
    else:
        interpolation = cv2.INTER_AREA if rows < image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, (cols, rows), interpolation=interpolation)
