"""Segmentation tiles (categories, 50/25/25 sampling) and whole images resized with their instances."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mammocad.patches.config import CATEGORIES, ResizeConfig, TileConfig
from mammocad.patches.segmentation import (
    grid_starts,
    make_tile,
    resize_with_instances,
    sample_tiles,
    tile_positions,
)
from mammocad.patches.types import LesionMask
from mammocad.utils.config import click_options
from mammocad.utils.errors import DataError
from mammocad.utils.geometry import mask_box

SHAPE = (600, 600)  # rows, cols: not a multiple of the stride, so the flush last tile is exercised
CONFIG = TileConfig()
TILE = CONFIG.tile_size
MASS = (300, 200, 30)  # (row, col, radius): ~2800 px, above 1% of a tile
CALC = (150, 250, 3)  # ~29 px: a lesion tile only through the whole-lesion rule


def _disc(shape: tuple[int, int], row: float, col: float, radius: float) -> np.ndarray:
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    return (rows - row) ** 2 + (cols - col) ** 2 <= radius ** 2


def _case(shape: tuple[int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray, list[LesionMask]]:
    """(image, breast, lesions): a breast disc against the left edge, its right side background,
    a bright mass and a tiny bright calcification inside it."""
    breast = _disc(shape, shape[0] / 2, 0, 0.6 * shape[1])
    image = np.where(breast, 100, 0).astype(np.uint8)
    lesions = []
    for key, label, (row, col, radius) in [("mass", "MALIGNANT_MASS", MASS), ("calc", "BENIGN_CALCIFICATION", CALC)]:
        lesion = _disc(shape, row, col, radius)
        image[lesion] = 250
        lesions.append(LesionMask(key, label, lesion.astype(np.uint8) * 255))
    return image, breast.astype(np.uint8) * 255, lesions


def _brute_category(breast: np.ndarray, lesions: list[LesionMask], row: int, col: int) -> str:
    """The TileConfig rule, counted directly on the tile's pixels."""
    window = np.s_[row:row + TILE, col:col + TILE]
    inside = [lesion.mask[window] > 0 for lesion in lesions]
    lesion_px = np.count_nonzero(np.logical_or.reduce(inside))
    whole = any(np.count_nonzero(m) == np.count_nonzero(lesion.mask) for m, lesion in zip(inside, lesions))
    breast_fraction = np.count_nonzero(breast[window]) / TILE ** 2
    if lesion_px >= CONFIG.min_lesion_fraction * TILE ** 2 or whole:
        return "lesion"
    if lesion_px == 0 and breast_fraction >= CONFIG.min_normal_breast:
        return "normal"
    if lesion_px == 0 and breast_fraction <= CONFIG.max_blank_breast:
        return "blank"
    return "mixed"


# --- grid and categories -----------------------------------------------------------------------

def test_grid_starts_step_by_stride_and_end_flush_with_the_edge():
    assert grid_starts(600, 256, 128).tolist() == [0, 128, 256, 344]
    assert grid_starts(512, 256, 128).tolist() == [0, 128, 256]  # already flush: no extra tile
    assert grid_starts(256, 256, 128).tolist() == [0]


def test_the_grid_covers_every_pixel():
    covered = np.zeros(SHAPE, bool)
    for row in grid_starts(SHAPE[0], TILE, CONFIG.stride):
        for col in grid_starts(SHAPE[1], TILE, CONFIG.stride):
            covered[row:row + TILE, col:col + TILE] = True
    assert covered.all()


def test_tile_positions_match_the_rule_counted_pixel_by_pixel():
    _, breast, lesions = _case()
    got = {(row, col): category for row, col, category in tile_positions(breast, lesions, CONFIG)}
    grid = [(r, c) for r in grid_starts(SHAPE[0], TILE, 128) for c in grid_starts(SHAPE[1], TILE, 128)]
    expected = {(r, c): _brute_category(breast, lesions, r, c) for r, c in grid}
    assert got == {pos: cat for pos, cat in expected.items() if cat != "mixed"}
    assert set(got.values()) == set(CATEGORIES)
    assert "mixed" in expected.values()  # the case exercises exclusion too
    assert list(got) == sorted(got)  # row-major


def test_a_lesion_smaller_than_the_threshold_still_gets_a_tile_holding_it_whole():
    _, breast, lesions = _case()
    calc = lesions[1:]
    positions = tile_positions(breast, calc, CONFIG)
    lesion_tiles = [(r, c) for r, c, cat in positions if cat == "lesion"]
    assert lesion_tiles
    for r, c in lesion_tiles:
        assert np.count_nonzero(calc[0].mask[r:r + TILE, c:c + TILE]) == np.count_nonzero(calc[0].mask)
    # Without the whole-lesion rule its ~29 px would be far below 1% of a tile (655 px).
    assert np.count_nonzero(calc[0].mask) < CONFIG.min_lesion_fraction * TILE ** 2


def test_an_image_smaller_than_a_tile_is_a_data_error():
    breast = np.full((200, 600), 255, np.uint8)
    with pytest.raises(DataError, match="smaller than a 256 px tile"):
        tile_positions(breast, [], CONFIG, source="tiny.png")


def test_bad_masks_are_data_errors():
    _, breast, lesions = _case()
    with pytest.raises(DataError, match="empty ROI mask for nothing"):
        tile_positions(breast, [LesionMask("nothing", "BENIGN_MASS", np.zeros(SHAPE, np.uint8))], CONFIG)
    with pytest.raises(DataError, match="shape"):
        tile_positions(breast, [LesionMask("m", "BENIGN_MASS", lesions[0].mask[:-1])], CONFIG)


# --- sampling ----------------------------------------------------------------------------------

def _candidates(lesion: int, normal: int, blank: int) -> dict[str, list[tuple[str, int, int]]]:
    return {
        category: [(f"img{i % 7}", 128 * i, index) for i in range(count)]
        for index, (category, count) in enumerate(zip(CATEGORIES, (lesion, normal, blank)))
    }


@pytest.mark.parametrize("pools, expected", [
    ((100, 100, 100), (100, 50, 50)),
    ((10, 100, 100), (10, 5, 5)),  # lesion tiles are scarce
    ((40, 7, 100), (15, 7, 7)),  # normal tiles are scarce; 29 = 14.5 + 7.25 + 7.25 fits, 30 would not
    ((11, 3, 100), (7, 3, 3)),  # 13 = 6.5 + 3.25 + 3.25: the rounding goes to the larger remainder
    ((0, 50, 50), (0, 0, 0)),  # no lesion tile: no tile at all rather than a skewed mix
])
def test_sample_tiles_keeps_50_25_25_with_as_many_tiles_as_the_scarcest_category_allows(pools, expected):
    candidates = _candidates(*pools)
    picked = sample_tiles(candidates, np.random.default_rng(0), CONFIG)
    category_of = {tile: category for category, tiles in candidates.items() for tile in tiles}
    counts = tuple(sum(category_of[t] == c for t in picked) for c in CATEGORIES)
    assert counts == expected
    total = sum(counts)
    for count, share in zip(counts, (0.5, 0.25, 0.25)):
        assert abs(count - share * total) < 1
    assert picked == sorted(set(picked))  # sorted, no tile twice


def test_max_tiles_caps_the_total_keeping_the_shares():
    picked = sample_tiles(_candidates(100, 100, 100), np.random.default_rng(0), TileConfig(max_tiles=20))
    assert [sum(t[2] == i for t in picked) for i in range(3)] == [10, 5, 5]


def test_sampling_is_deterministic_per_seed_and_ignores_candidate_order():
    candidates = _candidates(60, 80, 90)
    first = sample_tiles(candidates, np.random.default_rng(1), CONFIG)
    shuffled = {c: tiles[::-1] for c, tiles in reversed(list(candidates.items()))}
    assert sample_tiles(shuffled, np.random.default_rng(1), CONFIG) == first
    assert sample_tiles(candidates, np.random.default_rng(2), CONFIG) != first


def test_unknown_categories_are_rejected():
    with pytest.raises(ValueError, match="unknown tile categories"):
        sample_tiles({"mixed": [("a", 0, 0)]}, np.random.default_rng(0), CONFIG)


# --- tiles -------------------------------------------------------------------------------------

def test_make_tile_cuts_pixels_masks_and_boxes_aligned():
    image, breast, lesions = _case()
    row, col = 128, 128  # holds the whole calcification and part of the mass
    tile = make_tile(image, breast, lesions, row, col, CONFIG)
    window = np.s_[row:row + TILE, col:col + TILE]
    assert np.array_equal(tile.pixels, image[window]) and not np.shares_memory(tile.pixels, image)
    assert (tile.row, tile.col, tile.height, tile.width) == (row, col, TILE, TILE)
    assert tile.instance_keys == ("mass", "calc")
    for mask, box, lesion in zip(tile.masks, tile.boxes, lesions):
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        assert np.array_equal(mask > 0, lesion.mask[window] > 0)
        assert (tile.pixels[mask > 0] == 250).all()  # the bright lesion pixels of the image
        rows, cols = np.nonzero(mask)
        assert box == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
    # The mass has more pixels in this tile than the calcification, so it names the tile.
    assert (tile.category, tile.label, tile.abnormality) == ("lesion", "MALIGNANT_MASS", "mass")


def test_make_tile_agrees_with_tile_positions_and_labels_the_other_tiles():
    image, breast, lesions = _case()
    listed = {(row, col): category for row, col, category in tile_positions(breast, lesions, CONFIG)}
    starts = grid_starts(SHAPE[0], TILE, CONFIG.stride)
    for row in starts:
        for col in starts:
            tile = make_tile(image, breast, lesions, row, col, CONFIG)
            assert tile.category == listed.get((row, col), "mixed")
            if tile.category in ("normal", "blank"):
                assert (tile.label, tile.abnormality, tile.masks, tile.boxes) == (tile.category.upper(), None, (), ())
            elif tile.category == "mixed":  # a position only a caller's mistake would cut
                assert (tile.label, tile.abnormality) == ("MIXED", None)


def test_make_tile_outside_the_image_is_an_error():
    image, breast, lesions = _case()
    with pytest.raises(ValueError, match="not inside the image"):
        make_tile(image, breast, lesions, 400, 0, CONFIG)


# --- resize ------------------------------------------------------------------------------------

def test_resize_keeps_masks_on_their_lesions():
    image, _, lesions = _case()
    patch = resize_with_instances(image, lesions, size=64, source="x.png")
    assert patch.pixels.shape == (64, 64) and patch.pixels.dtype == image.dtype
    assert (patch.label, patch.row, patch.col, patch.height, patch.width) == ("IMAGE", 0, 0, *SHAPE)
    assert patch.instance_keys == ("mass", "calc") and patch.category is None
    mass = patch.masks[0] > 0
    assert patch.pixels[mass].mean() > 200 > patch.pixels[~mass].mean()
    scale = 64 / SHAPE[0]
    row, col, radius = MASS
    x0, y0, x1, y1 = patch.boxes[0]
    expected = ((col - radius) * scale, (row - radius) * scale, (col + radius + 1) * scale, (row + radius + 1) * scale)
    assert np.allclose((x0, y0, x1, y1), expected, atol=1)
    for mask, box in zip(patch.masks, patch.boxes):
        assert set(np.unique(mask)) == {0, 255}
        assert box == mask_box(mask).xyxy()
        rows, cols = np.nonzero(mask)
        assert box == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)  # tight


def test_a_tiny_lesion_does_not_vanish_in_the_resize():
    image, _, lesions = _case()
    calc = resize_with_instances(image, lesions, size=64).masks[1]
    # ~29 px in 600x600 is a third of one 64x64 output pixel (~88 px): below the 50% rule.
    assert np.count_nonzero(calc) == 1
    rows, cols = np.nonzero(calc)
    assert abs(rows[0] - CALC[0] * 64 / 600) <= 1 and abs(cols[0] - CALC[1] * 64 / 600) <= 1


def test_a_non_square_image_is_stretched_to_the_square():
    image, _, lesions = _case((600, 300))
    patch = resize_with_instances(image, lesions[:1], size=32)
    assert patch.pixels.shape == patch.masks[0].shape == (32, 32) and (patch.height, patch.width) == (600, 300)


def test_resize_rejects_an_empty_mask():
    image, _, _ = _case()
    with pytest.raises(DataError, match="empty ROI mask for e"):
        resize_with_instances(image, [LesionMask("e", "BENIGN_MASS", np.zeros(SHAPE, np.uint8))], size=32)


# --- configs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"tile_size": 0},
    {"stride": 0},
    {"stride": 300},  # gaps between tiles
    {"lesion_share": 0.6},  # shares sum to 1.1
    {"lesion_share": -0.5, "normal_share": 0.75, "blank_share": 0.75},
    {"min_lesion_fraction": 0.0},
    {"max_blank_breast": 0.6},  # overlaps the normal range
    {"min_normal_breast": 1.5},
    {"max_tiles": 0},
])
def test_invalid_tile_configs_raise(kwargs):
    with pytest.raises(ValueError):
        TileConfig(**kwargs)


def test_configs_become_cli_flags():
    with pytest.raises(ValueError, match="size"):
        ResizeConfig(size=0)
    for cls in (TileConfig, ResizeConfig):
        assert all(f.metadata.get("help") for f in dataclasses.fields(cls))
    command = click_options(TileConfig, ResizeConfig)(lambda **kwargs: kwargs)
    flags = {opt for param in command.__click_params__ for opt in param.opts}
    assert {"--tile-size", "--max-tiles", "--lesion-share", "--size"} <= flags
