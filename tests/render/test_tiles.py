"""Tests for unitlens.render.tiles: hand-computed pixels on tiny inputs, layout, scaling and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.render.tiles import BORDER_VALUE, scale_tile, stack_panels, tile_images, upscale

B = BORDER_VALUE


# ---------------------------------------------------------------------------------------------- scale_tile


def test_scale_tile_signed_hand_computed() -> None:
    tile = np.array([[-2.0, 0.0], [1.0, 2.0]])
    expected = np.array([[0.0, 0.5], [0.75, 1.0]])  # 0.5 + 0.5 * x / 2
    np.testing.assert_array_equal(scale_tile(tile, signed=True), expected)


def test_scale_tile_signed_negative_peak_is_black_and_zero_is_exactly_grey() -> None:
    tile = np.array([[-4.0, 0.0], [1.0, 0.0]])
    out = scale_tile(tile, signed=True)
    assert out[0, 0] == 0.0
    assert out[0, 1] == 0.5
    assert out[1, 1] == 0.5
    assert out[1, 0] == pytest.approx(0.625, abs=1e-15)


def test_scale_tile_unsigned_hand_computed() -> None:
    tile = np.array([[1.0, 2.0], [3.0, 5.0]])
    expected = np.array([[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(scale_tile(tile, signed=False), expected)


def test_scale_tile_unsigned_stretches_negative_values_too() -> None:
    tile = np.array([-3.0, -1.0, 1.0])
    np.testing.assert_array_equal(scale_tile(tile, signed=False), [0.0, 0.5, 1.0])


def test_scale_tile_constant_tiles() -> None:
    zeros = np.zeros((2, 3))
    np.testing.assert_array_equal(scale_tile(zeros, signed=True), np.full((2, 3), 0.5))
    # Unsigned constants already in [0, 1] are shown as themselves (a blank digit stays black) ...
    np.testing.assert_array_equal(scale_tile(zeros, signed=False), zeros)
    np.testing.assert_array_equal(scale_tile(np.full((2, 2), 1.0), signed=False), np.ones((2, 2)))
    np.testing.assert_array_equal(scale_tile(np.full((2, 2), 0.3), signed=False), np.full((2, 2), 0.3))
    # ... other constants as mid grey.
    np.testing.assert_array_equal(scale_tile(np.full((2, 2), 7.0), signed=False), np.full((2, 2), 0.5))
    np.testing.assert_array_equal(scale_tile(np.full((2, 2), -1.0), signed=False), np.full((2, 2), 0.5))
    # A constant non-zero signed tile is all at its extreme: white if positive, black if negative.
    np.testing.assert_array_equal(scale_tile(np.full((2, 2), 3.0), signed=True), np.ones((2, 2)))
    np.testing.assert_array_equal(scale_tile(np.full((2, 2), -3.0), signed=True), np.zeros((2, 2)))


def test_scale_tile_is_invariant_to_positive_scaling_and_extreme_magnitudes() -> None:
    rng = np.random.default_rng(0)
    tile = rng.normal(size=(5, 4))
    for signed in (True, False):
        ref = scale_tile(tile, signed)
        np.testing.assert_allclose(scale_tile(tile * 100.0, signed), ref, rtol=0, atol=1e-14)
        # Near float64's largest values max - min would overflow without the rescaling inside.
        huge = scale_tile(tile * 1e307, signed)
        assert np.isfinite(huge).all()
        np.testing.assert_allclose(huge, ref, rtol=0, atol=1e-12)
        tiny = scale_tile(tile * 1e-300, signed)
        np.testing.assert_allclose(tiny, ref, rtol=0, atol=1e-12)


def test_scale_tile_range_and_keeps_shape() -> None:
    rng = np.random.default_rng(1)
    tile = rng.normal(size=(3, 7)).astype(np.float32)
    for signed in (True, False):
        out = scale_tile(tile, signed)
        assert out.shape == (3, 7)
        assert out.dtype == np.float64
        assert out.min() >= 0.0
        assert out.max() <= 1.0
    unsigned = scale_tile(tile, signed=False)
    assert unsigned.min() == 0.0
    assert unsigned.max() == 1.0
    signed_out = scale_tile(tile, signed=True)
    # The largest |x| reaches black or white; the other end stays inside.
    assert min(signed_out.min(), 1.0 - signed_out.max()) == 0.0


def test_scale_tile_accepts_torch() -> None:
    tile = torch.tensor([[-2.0, 0.0], [1.0, 2.0]], requires_grad=True)
    np.testing.assert_array_equal(scale_tile(tile, True), scale_tile(tile.detach().numpy(), True))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_scale_tile_rejects_non_finite(bad: float) -> None:
    with pytest.raises(UnitlensError, match="tile"):
        scale_tile(np.array([[0.0, bad]]), signed=True)


def test_scale_tile_rejects_empty_and_non_numeric() -> None:
    with pytest.raises(UnitlensError, match="tile"):
        scale_tile(np.zeros((0, 3)), signed=False)
    with pytest.raises(UnitlensError, match="tile"):
        scale_tile(np.array([["a", "b"]]), signed=False)
    with pytest.raises(UnitlensError, match="tile"):
        scale_tile(torch.zeros(2, dtype=torch.complex64), signed=False)


# --------------------------------------------------------------------------------------------- tile_images


def test_tile_images_two_2x2_tiles_exact_pixels() -> None:
    images = np.array(
        [
            [[0.0, 1.0], [2.0, 3.0]],  # unsigned (no negatives anywhere): (x - 0) / 3
            [[4.0, 4.0], [6.0, 8.0]],  # (x - 4) / 4
        ]
    )
    out = tile_images(images, border_value=0.25)
    # n = 2 -> cols = ceil(sqrt 2) = 2, rows = 1; panel (1*2 + 2, 2*2 + 3) = (4, 7).
    c = 0.25
    expected = np.array(
        [
            [c, c, c, c, c, c, c],
            [c, 0.0, 1 / 3, c, 0.0, 0.0, c],
            [c, 2 / 3, 1.0, c, 0.5, 1.0, c],
            [c, c, c, c, c, c, c],
        ]
    )
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-15)


def test_tile_images_signed_2x2_with_empty_cell_and_default_border() -> None:
    images = np.array(
        [
            [[-1.0, 0.0], [0.5, 1.0]],
            [[0.0, 0.0], [0.0, 0.0]],
            [[2.0, -4.0], [0.0, 4.0]],
        ]
    )
    out = tile_images(images)  # a negative value -> signed for every tile
    # n = 3 -> cols 2, rows 2; panel (2*2 + 3, 2*2 + 3) = (7, 7); cell (1, 1) empty.
    # tile 0: max|x| = 1 -> 0.5 + 0.5 x; tile 1: all zero -> 0.5; tile 2: max|x| = 4 -> 0.5 + x / 8.
    expected = np.array(
        [
            [B, B, B, B, B, B, B],
            [B, 0.0, 0.5, B, 0.5, 0.5, B],
            [B, 0.75, 1.0, B, 0.5, 0.5, B],
            [B, B, B, B, B, B, B],
            [B, 0.75, 0.0, B, B, B, B],
            [B, 0.5, 1.0, B, B, B, B],
            [B, B, B, B, B, B, B],
        ]
    )
    np.testing.assert_array_equal(out, expected)
    assert B == 1.0  # documented default: white borders and empty cells


def test_tile_images_signed_decided_once_for_the_whole_call() -> None:
    nonneg = np.array([[[0.0, 2.0], [1.0, 2.0]]])
    with_neg = np.array([[[0.0, 2.0], [1.0, 2.0]], [[-1.0, 0.0], [0.0, 0.0]]])
    # Alone the first tile is unsigned: 0 -> black.
    # Beside a tile with a negative value it is signed: 0 -> grey.
    assert tile_images(nonneg)[1, 1] == 0.0
    assert tile_images(with_neg)[1, 1] == 0.5
    assert tile_images(with_neg, signed=False)[1, 1] == 0.0
    assert tile_images(nonneg, signed=True)[1, 1] == 0.5


def test_tile_images_tiles_scaled_independently() -> None:
    rng = np.random.default_rng(2)
    images = rng.normal(size=(5, 3, 4))
    ref = tile_images(images)
    boosted = images.copy()
    boosted[3] *= 100.0
    np.testing.assert_allclose(tile_images(boosted), ref, rtol=0, atol=1e-14)
    images_pos = rng.uniform(0.1, 1.0, size=(5, 3, 4))
    boosted_pos = images_pos.copy()
    boosted_pos[0] *= 100.0
    np.testing.assert_allclose(tile_images(boosted_pos), tile_images(images_pos), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("n", "grid", "border"), [(7, None, 1), (6, (2, 3), 2), (5, (3, 4), 0), (1, None, 3)]
)
def test_tile_images_layout_matches_brute_force(n: int, grid: tuple[int, int] | None, border: int) -> None:
    rng = np.random.default_rng(n)
    h, w = 3, 2
    images = rng.normal(size=(n, h, w))
    out = tile_images(images, grid=grid, border=border, border_value=0.125)
    cols = grid[1] if grid else int(np.ceil(np.sqrt(n)))
    rows = grid[0] if grid else int(np.ceil(n / cols))
    assert out.shape == (rows * h + (rows + 1) * border, cols * w + (cols + 1) * border)
    expected = np.full(out.shape, 0.125)
    for k in range(rows * cols):
        r, c = k // cols, k % cols
        top, left = border + r * (h + border), border + c * (w + border)
        if k < n:
            expected[top : top + h, left : left + w] = scale_tile(images[k], signed=True)
    np.testing.assert_array_equal(out, expected)


def test_tile_images_default_grid_is_near_square() -> None:
    for n, (rows, cols) in {
        1: (1, 1),
        2: (1, 2),
        4: (2, 2),
        5: (2, 3),
        9: (3, 3),
        10: (3, 4),
        36: (6, 6),
    }.items():
        out = tile_images(np.ones((n, 1, 1)), border=0)
        assert out.shape == (rows, cols), n


def test_tile_images_flat_and_3d_and_torch_agree() -> None:
    rng = np.random.default_rng(3)
    images = rng.normal(size=(6, 4, 5)).astype(np.float32)
    ref = tile_images(images)
    np.testing.assert_array_equal(tile_images(images.reshape(6, 20), (4, 5)), ref)
    np.testing.assert_array_equal(tile_images(images, (4, 5)), ref)
    tensor = torch.from_numpy(images).requires_grad_(True)
    np.testing.assert_array_equal(tile_images(tensor), ref)
    np.testing.assert_array_equal(tile_images(tensor.reshape(6, 20), image_shape=(4, 5)), ref)
    np.testing.assert_array_equal(tile_images(tensor.to(torch.float64)), ref)


def test_tile_images_places_rgb_pixels_channels_last_hand_built() -> None:
    # Two 2x3 RGB images, (n, c, h, w), on a 1 x 2 grid with 1-pixel borders: panel (1 + 2 + 1, 1 + 3 + 1 +
    # 3 + 1) = (4, 9, 3). Image 0 is pure red at (0, 1) and half blue at (1, 2); image 1 pure green at
    # (1, 0). Unsigned scaling stretches each tile's min (0) to black and max (1) to white, channels alike.
    images = np.zeros((2, 3, 2, 3))
    images[0, 0, 0, 1] = 1.0  # red
    images[0, 2, 1, 2] = 0.5  # blue, half of the tile's peak
    images[1, 1, 1, 0] = 4.0  # green; the tile's own peak, so it shows as 1
    out = tile_images(images, grid=(1, 2), signed=False)
    assert out.shape == (4, 9, 3) and out.dtype == np.float64
    expected = np.full((4, 9, 3), B)
    expected[1:3, 1:4] = 0.0  # tile 0 at rows 1-2, columns 1-3
    expected[1:3, 5:8] = 0.0  # tile 1 at rows 1-2, columns 5-7
    expected[1 + 0, 1 + 1] = [1.0, 0.0, 0.0]
    expected[1 + 1, 1 + 2] = [0.0, 0.0, 0.5]
    expected[1 + 1, 5 + 0] = [0.0, 1.0, 0.0]
    np.testing.assert_array_equal(out, expected)
    # Flat channel-major (n, c*h*w) with image_shape (c, h, w) is the same panel; so is a torch tensor.
    np.testing.assert_array_equal(
        tile_images(images.reshape(2, 18), (3, 2, 3), grid=(1, 2), signed=False), out
    )
    np.testing.assert_array_equal(tile_images(torch.from_numpy(images), grid=(1, 2), signed=False), out)


def test_tile_images_scales_an_rgb_tile_as_one_signed_around_zero() -> None:
    # One tile's three channels share one scale: 0.5 + 0.5 * x / max|x| over the whole tile.
    image = np.array([[[[-2.0]], [[1.0]], [[0.0]]]])  # (1, 3, 1, 1)
    np.testing.assert_array_equal(tile_images(image, border=0), [[[0.0, 0.75, 0.5]]])


def test_tile_images_one_channel_images_are_grey_as_before() -> None:
    rng = np.random.default_rng(5)
    images = rng.normal(size=(5, 4, 3))
    grey = tile_images(images)
    assert grey.ndim == 2
    np.testing.assert_array_equal(tile_images(images[:, None]), grey)
    np.testing.assert_array_equal(tile_images(images.reshape(5, 12), (1, 4, 3)), grey)
    np.testing.assert_array_equal(tile_images(images, (1, 4, 3)), grey)


def test_tile_images_border_zero_is_plain_concatenation() -> None:
    images = np.arange(8, dtype=np.float64).reshape(2, 2, 2)
    out = tile_images(images, grid=(1, 2), border=0, signed=False)
    expected = np.hstack([scale_tile(images[0], False), scale_tile(images[1], False)])
    np.testing.assert_array_equal(out, expected)


def test_tile_images_output_range_and_dtype() -> None:
    rng = np.random.default_rng(4)
    out = tile_images(rng.normal(size=(10, 6, 6)) * 50)
    assert out.dtype == np.float64
    assert out.min() >= 0.0
    assert out.max() <= 1.0


@pytest.mark.parametrize(
    ("images", "kwargs", "match"),
    [
        (np.zeros((3, 4)), {}, "image_shape"),
        (np.zeros((3, 4)), {"image_shape": (3, 3)}, r"expected \(n, 9\)"),
        (np.zeros((3, 2, 2)), {"image_shape": (4, 1)}, r"expected \(n, 4, 1\)"),
        (np.zeros(4), {}, r"\(n, h, w\), \(n, c, h, w\) or \(n, d\)"),
        (np.zeros((1, 2, 2, 2, 1)), {}, r"\(n, h, w\), \(n, c, h, w\) or \(n, d\)"),
        (np.zeros((1, 2, 2, 2)), {}, r"c = 2; expected 1 \(grey\) or 3 \(RGB\)"),
        (np.zeros((1, 3, 2, 2)), {"image_shape": (3, 2, 3)}, r"expected \(n, 3, 2, 3\)"),
        (np.zeros((1, 2, 2)), {"image_shape": (3, 2, 2)}, r"expected \(n, 2, 2\) grey images, or \(n, 3"),
        (np.zeros((1, 12)), {"image_shape": (3, 2, 3)}, r"expected \(n, 18\)"),
        (np.zeros((1, 8)), {"image_shape": (2, 2, 2)}, r"image_shape: expected 1 \(grey\) or 3 \(RGB\)"),
        (np.zeros((1, 8)), {"image_shape": (1, 2, 2, 2)}, r"image_shape: expected \(height, width\) or"),
        (np.zeros((0, 2, 2)), {}, "at least one"),
        (np.zeros((5, 2, 2)), {"grid": (2, 2)}, "grid.*cannot hold 5"),
        (np.zeros((2, 2, 2)), {"grid": (0, 2)}, "grid"),
        (np.zeros((2, 2, 2)), {"grid": (1, 2, 3)}, "grid"),
        (np.zeros((2, 2, 2)), {"border": -1}, "border"),
        (np.zeros((2, 2, 2)), {"border": 1.5}, "border"),
        (np.zeros((2, 2, 2)), {"border_value": 1.5}, "border_value"),
        (np.zeros((2, 2, 2)), {"border_value": float("nan")}, "border_value"),
        (np.zeros((2, 4)), {"image_shape": (2, 2, 1)}, "image_shape"),
        (np.zeros((2, 4)), {"image_shape": (0, 4)}, "image_shape"),
        (np.array([[[0.0, np.nan]]]), {}, "images.*finite"),
    ],
)
def test_tile_images_errors(images: np.ndarray, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(UnitlensError, match=match):
        tile_images(images, **kwargs)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- stack_panels


def test_stack_panels_row_pads_heights_at_bottom() -> None:
    a = np.full((2, 3), 0.1)
    b = np.full((4, 1), 0.2)
    out = stack_panels([a, b], gap=2, gap_value=0.9)
    assert out.shape == (4, 3 + 2 + 1)
    expected = np.full((4, 6), 0.9)
    expected[:2, :3] = 0.1
    expected[:, 5:] = 0.2
    np.testing.assert_array_equal(out, expected)


def test_stack_panels_column_pads_widths_at_right() -> None:
    a = np.full((2, 3), 0.1)
    b = np.full((1, 5), 0.2)
    c = np.full((3, 2), 0.3)
    out = stack_panels([a, b, c], axis=0, gap=1, gap_value=0.0)
    assert out.shape == (2 + 1 + 1 + 1 + 3, 5)
    expected = np.zeros((8, 5))
    expected[0:2, :3] = 0.1
    expected[3:4, :] = 0.2
    expected[5:8, :2] = 0.3
    np.testing.assert_array_equal(out, expected)


def test_stack_panels_default_gap_single_panel_and_colour() -> None:
    a = np.full((2, 2), 0.4)
    out = stack_panels([a, a])
    assert out.shape == (2, 2 + 4 + 2)
    np.testing.assert_array_equal(out[:, 2:6], np.full((2, 4), B))
    np.testing.assert_array_equal(stack_panels([a]), a)
    rgb = np.zeros((2, 2, 3))
    assert stack_panels([rgb, np.ones((3, 1, 3))], gap=0).shape == (3, 3, 3)
    np.testing.assert_array_equal(
        stack_panels([torch.full((2, 2), 0.4, dtype=torch.float64), a], gap=0), np.full((2, 4), 0.4)
    )


def test_stack_panels_of_tiled_panels() -> None:
    rng = np.random.default_rng(5)
    left = tile_images(rng.normal(size=(4, 3, 3)))  # (9, 9)
    right = tile_images(rng.normal(size=(9, 3, 3)))  # (13, 13)
    out = stack_panels([left, right])
    assert out.shape == (13, 9 + 4 + 13)
    np.testing.assert_array_equal(out[:9, :9], left)
    np.testing.assert_array_equal(out[:, 13:], right)


def test_stack_panels_errors() -> None:
    a = np.zeros((2, 2))
    with pytest.raises(UnitlensError, match="panels"):
        stack_panels([])
    with pytest.raises(UnitlensError, match="axis"):
        stack_panels([a], axis=2)
    with pytest.raises(UnitlensError, match="gap"):
        stack_panels([a], gap=-1)
    with pytest.raises(UnitlensError, match="gap_value"):
        stack_panels([a], gap_value=2.0)
    with pytest.raises(UnitlensError, match=r"panels\[1\]"):
        stack_panels([a, np.zeros((2, 2, 3))])
    with pytest.raises(UnitlensError, match=r"panels\[0\]"):
        stack_panels([np.zeros(3)])


# ------------------------------------------------------------------------------------------------- upscale


def test_upscale_nearest_neighbour() -> None:
    image = np.array([[0.0, 0.5], [1.0, 0.25]])
    expected = np.array(
        [
            [0.0, 0.0, 0.5, 0.5],
            [0.0, 0.0, 0.5, 0.5],
            [1.0, 1.0, 0.25, 0.25],
            [1.0, 1.0, 0.25, 0.25],
        ]
    )
    np.testing.assert_array_equal(upscale(image, 2), expected)
    np.testing.assert_array_equal(upscale(image, 1), image)
    rgb = np.arange(12, dtype=np.float64).reshape(2, 2, 3)
    big = upscale(rgb, 3)
    assert big.shape == (6, 6, 3)
    np.testing.assert_array_equal(big[::3, ::3], rgb)
    np.testing.assert_array_equal(big[2, 5], rgb[0, 1])


@pytest.mark.parametrize("factor", [0, -2, 1.5, True])
def test_upscale_rejects_bad_factor(factor: object) -> None:
    with pytest.raises(UnitlensError, match="factor"):
        upscale(np.zeros((2, 2)), factor)  # type: ignore[arg-type]
