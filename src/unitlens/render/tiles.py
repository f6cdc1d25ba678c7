"""Pure image tiling and grey-level scaling for display (paper section 6, "Display").

Nothing here writes files: every function takes arrays and returns a new float64 array in [0, 1]
(see ``unitlens.render.png`` for writing one). Inputs may be numpy arrays or torch tensors.

Images are grey ``(h, w)`` or colour: a user's model may see RGB inputs, stored channel-major
``(3, h, w)`` like PyTorch's; ``tile_images`` returns grey panels ``(H, W)`` and colour ones ``(H, W, 3)``
(channels last, as image files and ``unitlens.render.png`` want them). Inputs that are not images,
``image_shape`` ``(d,)``, are drawn as bar plots (:func:`vector_bitmaps`), so every figure and the report
show them as what they are, not as fake squares.

Display conventions, following the paper:

- each tile (one unit's image) is scaled on its own, so a weak unit is as visible as a strong one; an
  RGB tile is scaled as one (all three channels by the same rule), so its colours keep their balance;
- signed images show zero as mid grey (0.5), the tile's largest ``|x|`` as white when positive and as
  black when negative: ``0.5 + 0.5 * x / max|x|``;
- unsigned images are stretched from their minimum (black) to their maximum (white);
- tiles are separated by 1-pixel borders (settable), drawn in white by default (``BORDER_VALUE``).
  White separates tiles from the black background of digit images and from the grey background of
  signed filters alike; black would vanish against digits and grey against filters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from unitlens.errors import UnitlensError
from unitlens.results import display_shape

__all__ = ["BORDER_VALUE", "scale_tile", "stack_panels", "tile_images", "upscale", "vector_bitmaps"]

ImageShape = tuple[int] | tuple[int, int] | tuple[int, int, int]
"""``(h, w)`` grey, ``(c, h, w)`` channel-major with c = 1 (grey) or 3 (RGB), or ``(d,)`` vectors."""

BORDER_VALUE = 1.0
"""Default grey level of borders, gaps and empty grid cells: white (see the module docstring)."""

# Shown for a constant unsigned tile whose value is not itself a displayable grey level.
_CONSTANT_GREY = 0.5


def _as_float_array(x: Any, name: str) -> np.ndarray:
    """Return ``x`` (numpy array, torch tensor or nested sequence) as a float64 numpy array.

    Raises UnitlensError when ``x`` is not real-valued or holds NaN or infinity, naming ``name``.
    """
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise UnitlensError(f"{name}: expected real values, got a complex tensor ({x.dtype})")
        arr = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise UnitlensError(f"{name}: expected real numbers, got an array of dtype {arr.dtype}")
        arr = arr.astype(np.float64, copy=False)
    if arr.size and not np.isfinite(arr).all():
        raise UnitlensError(f"{name}: expected finite values, found NaN or infinity")
    return arr


def _check_unit_interval(value: float, name: str) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UnitlensError(f"{name}: expected a grey level in [0, 1], got {value!r}")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise UnitlensError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _scale_stack(stack: np.ndarray, signed: bool) -> np.ndarray:
    """Scale each tile of a finite float64 stack ``(n, ...)`` on its own into [0, 1].

    Each tile is first multiplied by a power of two near ``1 / max|x|``: exact in binary floating
    point, so the result is unchanged, but ``max - min`` can no longer overflow for huge values.
    """
    n = stack.shape[0]
    flat = stack.reshape(n, -1)
    peak = np.abs(flat).max(axis=1)
    _, exponent = np.frexp(peak)  # peak = mantissa * 2**exponent, mantissa in [0.5, 1); 0 -> 0
    normed = np.ldexp(flat, -exponent[:, None])  # |normed| < 1

    if signed:
        peak_n = np.abs(normed).max(axis=1, keepdims=True)
        # An all-zero tile has peak 0: dividing by 1 instead keeps it at exactly 0.5 (grey = zero).
        out = 0.5 + 0.5 * normed / np.where(peak_n > 0, peak_n, 1.0)
    else:
        low = normed.min(axis=1, keepdims=True)
        span = normed.max(axis=1, keepdims=True) - low
        out = (normed - low) / np.where(span > 0, span, 1.0)
        # A constant tile has no contrast to stretch. Its value is shown as-is when it already is a
        # grey level (a blank digit stays black, a saturated one white), else as mid grey.
        constant = span[:, 0] == 0
        if constant.any():
            value = flat[constant, :1]
            out[constant] = np.where((value >= 0.0) & (value <= 1.0), value, _CONSTANT_GREY)
    return out.reshape(stack.shape)


def scale_tile(tile: Any, signed: bool) -> np.ndarray:
    """Scale one image on its own into grey levels in [0, 1].

    Args:
        tile: an image of any shape, usually ``(h, w)``; numpy array or torch tensor.
        signed: True: ``0.5 + 0.5 * x / max|x|`` (zero -> 0.5 grey, +max|x| -> 1 white,
            -max|x| -> 0 black); an all-zero tile is 0.5 everywhere. False: ``(x - min) / (max - min)``;
            a constant tile keeps its value when that value lies in [0, 1], else is 0.5 everywhere.

    Returns:
        float64 array of the same shape, values in [0, 1].

    Raises:
        UnitlensError: empty tile, or NaN / infinite values.
    """
    arr = _as_float_array(tile, "tile")
    if arr.size == 0:
        raise UnitlensError(f"tile: expected at least one pixel, got shape {arr.shape}")
    return _scale_stack(arr[None], bool(signed))[0]


def _check_image_shape(image_shape: Any) -> tuple[int, int, int]:
    """``(h, w)`` or ``(c, h, w)`` -> ``(c, h, w)``, checked (c is 1 or 3)."""
    if not isinstance(image_shape, tuple | list) or len(image_shape) not in (2, 3):
        raise UnitlensError(
            f"image_shape: expected (height, width) or (channels, height, width), got {image_shape!r}"
        )
    *c, h, w = image_shape
    channels = _check_int(c[0], "image_shape[0] (channels)", 1) if c else 1
    if channels not in (1, 3):
        raise UnitlensError(f"image_shape: expected 1 (grey) or 3 (RGB) channels, got {image_shape!r}")
    k = len(image_shape) - 2
    return (
        channels,
        _check_int(h, f"image_shape[{k}] (height)", 1),
        _check_int(w, f"image_shape[{k + 1}] (width)", 1),
    )


def vector_bitmaps(values: Any) -> np.ndarray:
    """(n, d) vectors -> (n, h, w) bar plots, (h, w) = ``display_shape((d,))``, values in {-1, 0, 1}.

    Column k is value k (for d > ``VECTOR_COLUMNS``, the value of largest magnitude in the k-th of
    ``VECTOR_COLUMNS`` equal bins). Each plot is scaled on its own by its largest magnitude m: a vector
    with a negative value gets a zero line across the middle, bars up (+1) for positive values and down
    (-1) for negative ones; a non-negative vector gets bars up from the bottom row. A bar of a nonzero
    value is at least one pixel long. Tiled like any image (``tile_images``), 0 is the background: mid
    grey for signed panels, black for unsigned ones, with bars white up and black down.
    """
    v = _as_float_array(values, "vectors")
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
        raise UnitlensError(f"vectors: expected a non-empty (n, d) batch, got shape {v.shape}")
    n, d = v.shape
    h, w = display_shape((d,))
    if d > w:  # bin: keep each bin's value of largest magnitude
        edges = np.linspace(0, d, w + 1).astype(np.int64)
        binned = np.empty((n, w))
        for k in range(w):
            part = v[:, edges[k] : edges[k + 1]]
            binned[:, k] = part[np.arange(n), np.abs(part).argmax(axis=1)]
        v = binned
    m = np.abs(v).max(axis=1, keepdims=True)
    share = np.divide(np.abs(v), m, out=np.zeros_like(v), where=m > 0)  # (n, w) in [0, 1]
    signed = np.asarray((v < 0).any(axis=1)).reshape(n, 1)  # (n, 1)
    half = np.where(signed, h // 2, h)  # bar room: half the height for signed plots, all of it otherwise
    length = np.where(v != 0, np.maximum(np.ceil(share * half - 1e-9), 1), 0).astype(np.int64)
    rows = np.arange(h)[None, :, None]  # (1, h, 1)
    base = half[:, :, None]  # (n, 1, 1): the zero line is just below row base - 1
    up = (v > 0)[:, None, :] & (rows >= base - length[:, None, :]) & (rows < base)
    down = (v < 0)[:, None, :] & (rows >= base) & (rows < base + length[:, None, :])
    return up.astype(np.float64) - down.astype(np.float64)


def _as_image_stack(images: Any, image_shape: ImageShape | None) -> np.ndarray:
    """Return ``images`` as a float64 stack ``(n, h, w)`` (grey) or ``(n, h, w, 3)`` (RGB, channels last).

    Accepts ``(n, h, w)``, ``(n, c, h, w)`` and flat ``(n, d)`` batches (the last with ``image_shape``),
    checking each against ``image_shape`` when given; with ``image_shape`` ``(d,)`` a flat batch of vectors
    becomes their bar plots (:func:`vector_bitmaps`).
    """
    arr = _as_float_array(images, "images")
    if image_shape is not None and isinstance(image_shape, tuple | list) and len(image_shape) == 1:
        d = _check_int(image_shape[0], "image_shape[0] (values)", 1)
        if arr.ndim != 2 or arr.shape[1] != d:
            raise UnitlensError(
                f"images: shape {arr.shape} does not match image_shape ({d},): expected (n, {d})"
            )
        return vector_bitmaps(arr)
    shape = None if image_shape is None else _check_image_shape(image_shape)
    if arr.ndim == 2:
        if shape is None:
            raise UnitlensError(
                f"images: shape {arr.shape} is a flat (n, h*w) batch, which needs image_shape=(h, w) or "
                "(c, h, w); pass a single image as images[None]"
            )
        if arr.shape[1] != math.prod(shape):
            raise UnitlensError(
                f"images: shape {arr.shape} does not match image_shape {tuple(image_shape or ())}; "
                f"expected (n, {math.prod(shape)})"
            )
        arr = arr.reshape(arr.shape[0], *shape)  # channel-major, as flattened (c, h, w) images are
    elif arr.ndim == 3:
        if shape is not None and (shape[0] != 1 or arr.shape[1:] != shape[1:]):
            raise UnitlensError(
                f"images: shape {arr.shape} does not match image_shape {tuple(image_shape or ())}; "
                f"expected (n, {shape[1]}, {shape[2]})"
                + (f" grey images, or (n, {shape[0]}, {shape[1]}, {shape[2]})" if shape[0] != 1 else "")
            )
        arr = arr[:, None]
    elif arr.ndim == 4:
        if arr.shape[1] not in (1, 3):
            raise UnitlensError(
                f"images: shape {arr.shape} is (n, c, h, w) with c = {arr.shape[1]}; expected 1 (grey) or 3 "
                "(RGB) channels"
            )
        if shape is not None and arr.shape[1:] != shape:
            raise UnitlensError(
                f"images: shape {arr.shape} does not match image_shape {tuple(image_shape or ())}; "
                f"expected (n, {shape[0]}, {shape[1]}, {shape[2]})"
            )
    else:
        raise UnitlensError(f"images: expected shape (n, h, w), (n, c, h, w) or (n, d), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[2] == 0 or arr.shape[3] == 0:
        raise UnitlensError(f"images: expected at least one non-empty image, got shape {arr.shape}")
    # (n, 1, h, w) -> (n, h, w); (n, 3, h, w) -> (n, h, w, 3): pixels with their channels last.
    return arr[:, 0] if arr.shape[1] == 1 else arr.transpose(0, 2, 3, 1)


def tile_images(
    images: Any,
    image_shape: ImageShape | None = None,
    *,
    grid: tuple[int, int] | None = None,
    signed: bool | None = None,
    border: int = 1,
    border_value: float = BORDER_VALUE,
) -> np.ndarray:
    """Lay images out on a grid, each scaled on its own, separated by borders.

    Tile ``k`` goes to grid row ``k // cols``, column ``k % cols``; its top-left pixel is at
    ``(border + row * (h + border), border + col * (w + border))``. The panel is
    ``(rows * h + (rows + 1) * border, cols * w + (cols + 1) * border)``: borders run between tiles
    and around the panel. Grid cells without an image are filled with ``border_value``.

    Args:
        images: grey ``(n, h, w)``, ``(n, c, h, w)`` with c = 1 (grey) or 3 (RGB), or flat ``(n, d)``
            together with ``image_shape`` (``d = h*w`` or ``c*h*w``, channel-major); numpy or torch.
        image_shape: ``(h, w)``, ``(c, h, w)`` or ``(d,)`` (vectors, drawn as bar plots); required for flat
            images, checked against the others.
        grid: ``(rows, cols)`` with ``rows * cols >= n``; default: ``cols = ceil(sqrt(n))``,
            ``rows = ceil(n / cols)``.
        signed: how tiles are scaled (see ``scale_tile``; an RGB tile's three channels together). None
            decides once for the whole call: signed when any value is negative, so all tiles of a panel
            are displayed alike.
        border: border width in pixels (0 for none).
        border_value: grey level of borders and empty cells, in [0, 1]; white by default.

    Returns:
        float64 array with values in [0, 1]: ``(H, W)`` for grey images, ``(H, W, 3)`` for RGB ones.

    Raises:
        UnitlensError: wrong shapes, non-finite values, a grid too small for ``n``, bad border settings.
    """
    stack = _as_image_stack(images, image_shape)
    n, h, w = stack.shape[:3]
    colour = stack.shape[3:]  # () grey, (3,) RGB
    border = _check_int(border, "border", 0)
    _check_unit_interval(border_value, "border_value")

    if grid is None:
        cols = math.isqrt(n - 1) + 1  # ceil(sqrt(n)) without floating point
        rows = -(-n // cols)
    else:
        if len(grid) != 2:
            raise UnitlensError(f"grid: expected (rows, cols), got {grid!r}")
        rows = _check_int(grid[0], "grid[0] (rows)", 1)
        cols = _check_int(grid[1], "grid[1] (cols)", 1)
        if rows * cols < n:
            raise UnitlensError(f"grid: {rows} x {cols} = {rows * cols} cells cannot hold {n} images")

    if signed is None:
        signed = bool((stack < 0).any())
    scaled = _scale_stack(stack, bool(signed))

    size = (rows * h + (rows + 1) * border, cols * w + (cols + 1) * border)
    panel = np.full((*size, *colour), float(border_value))
    # Fill the used cells in one assignment through a (rows, h, cols, w[, 3]) view of the panel.
    cells = np.full((rows * cols, h, w, *colour), float(border_value))
    cells[:n] = scaled
    step_h, step_w = h + border, w + border
    inner = panel[border : border + rows * step_h, border : border + cols * step_w]
    view = inner.reshape(rows, step_h, cols, step_w, *colour)[:, :h, :, :w]
    view[...] = np.moveaxis(cells.reshape(rows, cols, h, w, *colour), 1, 2)
    return panel


def _as_panel(panel: Any, name: str) -> np.ndarray:
    arr = _as_float_array(panel, name)
    if arr.ndim not in (2, 3) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UnitlensError(f"{name}: expected a non-empty image (H, W) or (H, W, C), got shape {arr.shape}")
    return arr


def stack_panels(
    panels: Sequence[Any], *, axis: int = 1, gap: int = 4, gap_value: float = BORDER_VALUE
) -> np.ndarray:
    """Join panels side by side (``axis=1``) or in a column (``axis=0``) for multi-panel figures.

    Panels shorter (``axis=1``) or narrower (``axis=0``) than the largest are padded with ``gap_value``
    at the bottom (resp. right): panels stay aligned at the top (resp. left). ``gap`` columns (rows) of
    ``gap_value`` separate neighbouring panels; none are added at the outer edges.

    Args:
        panels: images ``(H_i, W_i)``, or all ``(H_i, W_i, C)`` with the same ``C``.
        axis: 1 for a row of panels, 0 for a column.
        gap: pixels between panels.
        gap_value: grey level of gaps and padding, in [0, 1].

    Returns:
        float64 array: ``(max H_i, sum W_i + gap * (k - 1))`` for ``axis=1``,
        ``(sum H_i + gap * (k - 1), max W_i)`` for ``axis=0`` (plus ``C`` when given).
    """
    if axis not in (0, 1) or isinstance(axis, bool):
        raise UnitlensError(f"axis: expected 0 (column) or 1 (row), got {axis!r}")
    gap = _check_int(gap, "gap", 0)
    _check_unit_interval(gap_value, "gap_value")
    arrays = [_as_panel(p, f"panels[{i}]") for i, p in enumerate(panels)]
    if not arrays:
        raise UnitlensError("panels: expected at least one panel, got none")
    trailing = arrays[0].shape[2:]
    for i, arr in enumerate(arrays):
        if arr.shape[2:] != trailing:
            raise UnitlensError(
                f"panels[{i}]: shape {arr.shape} does not match panels[0] {arrays[0].shape} "
                "(all grey (H, W) or all (H, W, C) with the same C)"
            )

    across = 1 - axis  # the dimension that is padded to a common size
    size_across = max(a.shape[across] for a in arrays)
    size_along = sum(a.shape[axis] for a in arrays) + gap * (len(arrays) - 1)
    shape = [0, 0, *trailing]
    shape[axis], shape[across] = size_along, size_across
    out = np.full(tuple(shape), float(gap_value))
    start = 0
    for arr in arrays:
        stop = start + arr.shape[axis]
        if axis == 1:
            out[: arr.shape[0], start:stop] = arr
        else:
            out[start:stop, : arr.shape[1]] = arr
        start = stop + gap
    return out


def upscale(image: Any, factor: int) -> np.ndarray:
    """Enlarge an image ``(H, W)`` or ``(H, W, C)`` by an integer ``factor``, nearest neighbour.

    Each pixel becomes a ``factor x factor`` block, so tiles and 1-pixel borders stay sharp.

    Returns:
        float64 array ``(H * factor, W * factor[, C])``.
    """
    arr = _as_panel(image, "image")
    factor = _check_int(factor, "factor", 1)
    return np.repeat(np.repeat(arr, factor, axis=0), factor, axis=1)
