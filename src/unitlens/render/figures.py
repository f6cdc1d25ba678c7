"""The paper's figures (spec section 6), rendered from a run's raw results alone.

Every figure function is pure: it takes validated results (``unitlens.results.StackResults``, one per
trained stack, ``None`` where a stack was not run; ``StackResults.load`` reads them) and returns a
:class:`FigureImage`: a grey image ``(H, W)`` in [0, 1] (``(H, W, 3)`` when it shows RGB inputs) plus the
position of every panel, so tests and reports can find the tiles. ``FigureImage`` converts to a numpy
array (``np.asarray(fig)``) and can be passed to ``save_png`` as is. ``write_figures`` is the only function
that touches files; it also writes ``manifest.json``, the list of figures (file, kind, data set, model,
recipe, layer, caption) that the report shows.

Display rules (paper section 6, via ``unitlens.render.tiles``): grey-scale tiles, each scaled on its own;
signed images black negative, grey zero, white positive; 1-pixel borders between tiles (``scale`` pixels
once a figure is enlarged). A panel a run cannot provide (no SDAE, a missing layer, no samples for an SDAE)
is drawn as a light-grey box that says what is missing, and named in ``FigureImage.missing``. Shapes are
not checked here: ``unitlens.results`` checked them once, when the results were loaded or made.

Standardised data (patches) is shown in pixel units when the results carry ``pixel_mean`` and
``pixel_scale`` (s): inputs (AM optima, samples) as ``x * s + mean``, and weights (filters, linear
combinations) as the equivalent weights on raw pixels, ``w / s``, since ``w . ((x - mean) / s)`` equals
``(w / s) . x`` up to a constant.

Unit positions (``units=``, ``restart_units=``) index the *studied* units of a layer (rows of the
results arrays); labels show the model's unit numbers (the ``units`` field).

A user's own model (``unitlens visualize --model ...``) is not one of the paper's stacks: its results are
``results/NAME-RECIPE.npz``, one per recipe, with layer names (``"conv1"``) and grey or RGB inputs. Its
figures (``model_layers_figure``, ``model_restarts_figure``, ``recipes_figure``) label layers by name and
show RGB inputs in colour; labels and borders stay grey.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from unitlens.atomic import write_bytes
from unitlens.catalogue import DATASET_LABELS, DATASETS, MODEL_LABELS, MODELS, split_stack_name
from unitlens.errors import UnitlensError
from unitlens.render.png import save_png
from unitlens.render.tiles import BORDER_VALUE, tile_images, upscale
from unitlens.results import LayerResults, StackResults

__all__ = [
    "DATASETS",
    "FIGURE_KINDS",
    "MANIFEST",
    "MODELS",
    "RECIPE_ORDER",
    "FigureEntry",
    "FigureImage",
    "figure1",
    "figure2",
    "figure3",
    "figure4",
    "is_paper_stack",
    "layer_figure",
    "model_layers_figure",
    "model_restarts_figure",
    "read_manifest",
    "recipe_order",
    "recipes_figure",
    "samples_figure",
    "selectivity_figure",
    "split_results_name",
    "write_figures",
    "write_manifest",
]

Box = tuple[int, int, int, int]
"""A panel's place in a figure: (top, left, height, width) in pixels."""


BACKGROUND = BORDER_VALUE  # white, like the tile borders, so panels read as one sheet
PLACEHOLDER = 0.9  # light grey box standing in for a panel the results cannot provide
TEXT_GREY = 0.0

_LAYER_KEY = re.compile(r"^layer(\d+)/")


@dataclass(frozen=True)
class FigureImage:
    """A rendered figure.

    Attributes:
        image: ``(H, W)`` float64 grey levels in [0, 1], or ``(H, W, 3)`` RGB for a figure of RGB inputs.
        boxes: panel name -> ``(top, left, height, width)`` of that panel in ``image`` (for a tile grid,
            the box is exactly the output of ``tile_images``, enlarged by the figure's ``scale``).
        missing: names of panels the results could not provide (drawn as labelled placeholders).
    """

    image: np.ndarray
    boxes: Mapping[str, Box] = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.array(self.image, dtype=dtype, copy=True if copy else None)

    def crop(self, name: str) -> np.ndarray:
        """The pixels of panel ``name``, ``(height, width)`` (``(height, width, 3)`` in an RGB figure)."""
        if name not in self.boxes:
            raise UnitlensError(f"figure has no panel {name!r}; panels: {sorted(self.boxes)}")
        top, left, h, w = self.boxes[name]
        return self.image[top : top + h, left : left + w]


# ------------------------------------------------------------------------------------------ layout blocks


@dataclass
class _Block:
    """A piece of a figure under construction: pixels plus the boxes of the named panels inside.

    ``image`` is grey ``(h, w)`` or RGB ``(h, w, 3)``; a table of both kinds is RGB (grey cells, such as
    labels, are copied to all three channels).
    """

    image: np.ndarray
    boxes: dict[str, Box] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def _blank(height: int, width: int, *, colour: bool = False) -> _Block:
    return _Block(np.full((max(height, 0), max(width, 0), *((3,) if colour else ())), BACKGROUND))


def _table(
    cells: Sequence[Sequence[_Block | None]], gap_h: int, gap_v: int | None = None, *, centre: bool = True
) -> _Block:
    """Lay blocks out on a table: row height and column width are their largest cell's.

    Each cell is centred in its slot, or put at the slot's top-left corner when ``centre`` is False.
    """
    gap_v = gap_h if gap_v is None else gap_v
    n_rows, n_cols = len(cells), max(len(r) for r in cells)
    colour = any(c is not None and c.image.ndim == 3 for r in cells for c in r)
    heights = [max((c.height for c in row if c is not None), default=0) for row in cells]
    widths = [
        max((c.width for r in cells if j < len(r) and (c := r[j]) is not None), default=0)
        for j in range(n_cols)
    ]
    out = _blank(sum(heights) + gap_v * (n_rows - 1), sum(widths) + gap_h * (n_cols - 1), colour=colour)
    top = 0
    for i, row in enumerate(cells):
        left = 0
        for j in range(n_cols):
            cell = row[j] if j < len(row) else None
            if cell is not None:
                dt, dl = top, left
                if centre:
                    dt, dl = top + (heights[i] - cell.height) // 2, left + (widths[j] - cell.width) // 2
                pixels = cell.image[:, :, None] if colour and cell.image.ndim == 2 else cell.image
                out.image[dt : dt + cell.height, dl : dl + cell.width] = pixels
                for name, (t, le, h, w) in cell.boxes.items():
                    out.boxes[name] = (t + dt, le + dl, h, w)
                out.missing.extend(cell.missing)
            left += widths[j] + gap_h
        top += heights[i] + gap_v
    return out


def _row(blocks: Sequence[_Block | None], gap: int) -> _Block:
    return _table([list(blocks)], gap)


def _column(blocks: Sequence[_Block | None], gap: int, *, centre: bool = True) -> _Block:
    return _table([[b] for b in blocks], gap, centre=centre)


def _pad(block: _Block, pad: int) -> _Block:
    return _table([[_blank(pad, 0)], [_row([_blank(0, pad), block, _blank(0, pad)], 0)], [_blank(pad, 0)]], 0)


def _font_size(scale: int) -> int:
    # 11 px at scale 1 (the size of Pillow's bitmap font) growing with the tiles, so labels keep pace.
    return 6 + 5 * scale


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError, TypeError):  # Pillow without FreeType: the fixed-size bitmap font
        return ImageFont.load_default()


def _text(text: str, size: int) -> _Block:
    """Black ``text`` on the background, cropped to the text with a small margin; lines split at newlines
    are centred under each other."""
    lines = text.split("\n")
    if len(lines) > 1:
        return _column([_text(line, size) for line in lines], 0)
    font = _font(size)
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    # Lines share one height (ascender to descender) so that labels of one row align.
    top, bottom = min(top, int(font.getbbox("Ag")[1])), max(bottom, int(font.getbbox("Ag")[3]))
    pad = max(1, size // 5)
    picture = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), round(BACKGROUND * 255))
    ImageDraw.Draw(picture).text((pad - left, pad - top), text, font=font, fill=int(TEXT_GREY * 255))
    return _Block(np.asarray(picture, dtype=np.float64) / 255.0)


def _placeholder(name: str, message: str, height: int, width: int, scale: int) -> _Block:
    """A light-grey ``height x width`` box saying ``message``, standing in for panel ``name``."""
    height, width = max(height, 1), max(width, 1)
    font = _font(_font_size(scale))
    picture = Image.new("L", (width, height), round(PLACEHOLDER * 255))
    draw = ImageDraw.Draw(picture)
    lines = message.split("\n")
    line_h = int(font.getbbox("Ag")[3]) + 2
    y = (height - line_h * len(lines)) // 2
    for line in lines:
        bbox = font.getbbox(line)
        draw.text(((width - (int(bbox[2]) - int(bbox[0]))) // 2 - int(bbox[0]), y), line, font=font, fill=64)
        y += line_h
    return _Block(np.asarray(picture, dtype=np.float64) / 255.0, {name: (0, 0, height, width)}, [name])


def _panel(name: str, image: np.ndarray, scale: int) -> _Block:
    big = upscale(image, scale)
    return _Block(big, {name: (0, 0, big.shape[0], big.shape[1])})


def _row_labels(labels: Sequence[str], tile_h: int, scale: int, size: int) -> _Block:
    """A column of labels, each centred on one row of a tile grid whose tiles are ``tile_h`` high."""
    step = (tile_h + 1) * scale
    texts = [_text(s, size) for s in labels]
    width = max(t.width for t in texts)
    out = _blank(max(len(labels) * step + scale, max(t.height for t in texts)), width)
    for r, t in enumerate(texts):
        centre = scale + r * step + tile_h * scale // 2
        top = min(max(centre - t.height // 2, 0), out.height - t.height)
        out.image[top : top + t.height, width - t.width :] = t.image
    return out


def _grid_size(n: int, spatial: tuple[int, int], grid: tuple[int, int] | None = None) -> tuple[int, int]:
    """Pixel size of ``tile_images`` for ``n`` tiles of ``spatial`` = (h, w) (1-pixel borders), at scale 1."""
    if grid is None:
        cols = math.isqrt(n - 1) + 1
        grid = (-(-n // cols), cols)
    h, w = spatial
    return grid[0] * h + grid[0] + 1, grid[1] * w + grid[1] + 1


# ------------------------------------------------------------------------------------------ reading results


class _Stack:
    """One stack's results as the figures show them: inputs and weights in raw-pixel units.

    Only reads the validated ``StackResults``; ``name`` (e.g. "mnist-dbn") is used in messages.
    """

    def __init__(self, results: StackResults, name: str) -> None:
        self.results, self.name = results, name
        self.image_shape = results.image_shape  # (h, w) or (c, h, w): what tile_images takes
        self.spatial = results.spatial
        self.d = results.n_inputs
        self.mean = None if results.pixel_mean is None else results.pixel_mean.astype(np.float64)
        self.scale = None if results.pixel_scale is None else results.pixel_scale.astype(np.float64)
        self.layers = list(results.layers)

    def layer(self, j: int) -> LayerResults | None:
        return self.results.layers.get(j)

    def n_units(self, layer: int) -> int | None:
        """Studied units of ``layer``, or None when the stack has no such layer."""
        lr = self.layer(layer)
        return None if lr is None else lr.n_units

    def unit_ids(self, layer: int) -> np.ndarray:
        """The model's unit numbers of the studied units of ``layer``, ``(U,)``."""
        lr = self.results.layer(layer)
        return lr.units.astype(np.int64)

    def as_pixels(self, x: np.ndarray) -> np.ndarray:
        """Inputs ``(..., d)`` in the units of the raw pixels (see the module docstring)."""
        x = x.astype(np.float64)
        if self.scale is not None:
            x = x * self.scale
        return x if self.mean is None else x + self.mean

    def as_pixel_weights(self, w: np.ndarray) -> np.ndarray:
        """Weights ``(..., d)`` acting on standardised inputs, as weights on raw pixels."""
        w = w.astype(np.float64)
        return w if self.scale is None else w / self.scale

    def filters(self, layer: int) -> np.ndarray | None:
        lr = self.layer(layer)
        return None if lr is None or lr.filters is None else self.as_pixel_weights(lr.filters)

    def linear_combination(self, layer: int) -> np.ndarray | None:
        lr = self.layer(layer)
        return None if lr is None or lr.lc is None else self.as_pixel_weights(lr.lc)

    def am(self, layer: int) -> np.ndarray | None:
        """All restarts' x*, ``(U, R, d)``."""
        lr = self.layer(layer)
        return None if lr is None else self.as_pixels(lr.am_x)

    def am_best(self, layer: int) -> np.ndarray | None:
        """Each unit's best restart ``(U, d)``."""
        lr = self.layer(layer)
        return None if lr is None else self.as_pixels(lr.best_x())

    def restarts_by_activation(self, layer: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Restarts sorted by final activation, most active first: x ``(U, R, d)``, activation ``(U, R)``."""
        lr = self.layer(layer)
        if lr is None:
            return None
        x, act = self.as_pixels(lr.am_x), lr.am_activation
        order = np.argsort(-act, axis=1, kind="stable")
        return np.take_along_axis(x, order[:, :, None], axis=1), np.take_along_axis(act, order, axis=1)

    def samples(self, layer: int) -> np.ndarray | None:
        lr = self.layer(layer)
        return None if lr is None or lr.samples is None else self.as_pixels(lr.samples)

    def samples_mean(self, layer: int) -> np.ndarray | None:
        lr = self.layer(layer)
        return None if lr is None or lr.samples_mean is None else self.as_pixels(lr.samples_mean)

    def selectivity(self, layer: int) -> np.ndarray | None:
        """The ``(Us, Us)`` selectivity matrix (validated into [0, 1] by ``unitlens.results``), or None."""
        lr = self.layer(layer)
        return None if lr is None or lr.selectivity is None else lr.selectivity.astype(np.float64)

    def flat(self, layer: int) -> np.ndarray | None:
        lr = self.layer(layer)
        return None if lr is None or lr.flat is None else lr.flat

    def flag_word(self, layer: int, position: int) -> str:
        """``"dead"``, ``"flat"`` or ``""`` for the studied unit at ``position`` of ``layer``."""
        lr = self.layer(layer)
        if lr is None or lr.flat is None or not lr.flat[position]:
            return ""
        return "dead" if lr.dead is not None and lr.dead[position] else "flat"


def _stack(results: StackResults | None, name: str) -> _Stack | None:
    return None if results is None else _Stack(results, name)


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int | np.integer) or scale < 1:
        raise UnitlensError(f"scale: expected an integer >= 1, got {scale!r}")
    return int(scale)


def _positions(units: Sequence[int] | None, n_units: int, available: int, what: str) -> list[int]:
    """Positions of the studied units to show: ``units`` as given, else the first ``n_units``."""
    if units is None:
        return list(range(min(n_units, available)))
    pos = [int(u) for u in units]
    bad = [u for u in pos if not 0 <= u < available]
    if bad or not pos:
        raise UnitlensError(f"{what}: unit positions must lie in 0..{available - 1}, got {list(units)}")
    return pos


# ------------------------------------------------------------------------------------------ Figures 1 and 2


def _layer_panel(
    stack: _Stack | None, model: str, layer: int, n_units: int, nominal: tuple[int, int], scale: int
) -> _Block:
    name = f"{model}/layer{layer}"
    if stack is None:
        return _placeholder(
            name, f"no {model.upper()}\nresults", nominal[0] * scale, nominal[1] * scale, scale
        )
    images = stack.filters(layer) if layer == 1 else stack.am_best(layer)
    if images is None and layer == 1:
        images = stack.am_best(layer)  # layer 1's AM optimum is the normalised filter (spec section 3)
    if images is None:  # every layer of the results has AM optima: only a missing layer gets here
        return _placeholder(name, f"no layer {layer}", nominal[0] * scale, nominal[1] * scale, scale)
    shown = images[:n_units]
    return _panel(name, tile_images(shown, stack.image_shape), scale)


def _restarts_block(stack: _Stack | None, model: str, layer: int, units: Sequence[int], scale: int) -> _Block:
    size = _font_size(scale)
    title = _text(f"{model.upper()} layer {layer}: restarts, most active first", size)
    data = None if stack is None else stack.restarts_by_activation(layer)
    if stack is None or data is None:
        reason = f"no {model.upper()} results" if stack is None else f"no layer {layer} restarts"
        h = (stack.spatial[0] * 6 + 8) if stack is not None else 60
        return _column([title, _placeholder("restarts", reason, h * scale, h * scale, scale)], 2 * scale)
    x, _ = data
    positions = [u for u in units if u < x.shape[0]]
    ids = stack.unit_ids(layer)
    cells: list[_Block | None] = []
    for k, u in enumerate(positions):
        grid = _panel(f"restarts/{k}", tile_images(x[u], stack.image_shape), scale)
        cells.append(_column([_text(f"unit {ids[u]}", size), grid], scale))
    cols = 2 if len(cells) > 1 else 1
    rows = [cells[i : i + cols] for i in range(0, len(cells), cols)]
    return _column([title, _table(rows, 3 * scale, 2 * scale)], 2 * scale)


def _flagged_caption(stacks: dict[str, _Stack | None], layers: Sequence[int], n_units: int) -> str:
    """A caption naming the shown units that are dead or flat (``unitlens.analysis.flat``): their tiles
    are stretched to full contrast like the others, but they are not features."""
    parts = []
    for model, stack in stacks.items():
        if stack is None:
            continue
        for j in layers:
            every = stack.flat(j)
            if j < 2 or every is None:
                continue
            ids = stack.unit_ids(j)
            flags = every[:n_units]
            shown = [int(ids[k]) for k in np.flatnonzero(flags)]
            if shown:
                parts.append(f"{model.upper()} L{j} unit{'s' if len(shown) > 1 else ''} {shown}")
    return ("dead or flat, not features: " + "; ".join(parts)) if parts else ""


def layer_figure(
    dbn: StackResults | None,
    sdae: StackResults | None,
    *,
    n_units: int = 36,
    layers: Sequence[int] = (1, 2, 3),
    restart_model: str = "sdae",
    restart_layer: int = 3,
    restart_units: Sequence[int] = (0, 1, 2, 3),
    title: str | None = None,
    scale: int = 1,
) -> FigureImage:
    """Figures 1 and 2: filters and AM optima per layer, rows DBN and SDAE, restarts beside.

    Columns: layer 1's filters, then each higher layer's best AM optimum x*; each panel is a near-square
    grid (6x6 for 36) of the first ``n_units`` studied units (fewer when fewer were studied). Beside it:
    the units at positions ``restart_units`` of ``restart_model``'s layer ``restart_layer``, each a grid
    of all its restarts sorted by final activation, most active first (3x3 for 9).

    Panels are named ``"{model}/layer{j}"`` and ``"restarts/{k}"`` in ``boxes``.

    Raises:
        UnitlensError: both stacks missing, a bad ``scale``.
    """
    scale = _check_scale(scale)
    stacks = {"dbn": _stack(dbn, "dbn"), "sdae": _stack(sdae, "sdae")}
    present = [s for s in stacks.values() if s is not None]
    if not present:
        raise UnitlensError("layer figure: no results for either the DBN or the SDAE")
    if restart_model not in stacks:
        raise UnitlensError(f"restart_model: expected one of {sorted(stacks)}, got {restart_model!r}")
    if n_units < 1:
        raise UnitlensError(f"n_units: expected >= 1, got {n_units}")
    studied = [n for s in present for j in layers if (n := s.n_units(j)) is not None]
    nominal = _grid_size(min([n_units, *studied]) if studied else n_units, present[0].spatial)

    size = _font_size(scale)
    header: list[_Block | None] = [None]
    for j in layers:
        header.append(_text(f"layer {j}: " + ("filters" if j == 1 else "AM"), size))
    rows: list[list[_Block | None]] = [header]
    for model, stack in stacks.items():
        row: list[_Block | None] = [_text(model.upper(), size)]
        row += [_layer_panel(stack, model, j, n_units, nominal, scale) for j in layers]
        rows.append(row)
    main = _table(rows, 4 * scale, 3 * scale)
    restarts = _restarts_block(stacks[restart_model], restart_model, restart_layer, restart_units, scale)
    body = _row([main, restarts], 12 * scale)
    flagged = _flagged_caption(stacks, layers, n_units)
    if flagged:
        body = _column([body, _text(flagged, size - 2)], 2 * scale, centre=False)
    if title:
        body = _column([_text(title, size + 2), body], 2 * scale)
    out = _pad(body, 3 * scale)
    return FigureImage(out.image, out.boxes, tuple(out.missing))


def figure1(
    dbn: StackResults | None,
    sdae: StackResults | None,
    *,
    n_units: int = 36,
    restart_units: Sequence[int] = (0, 1, 2, 3),
    scale: int = 1,
) -> FigureImage:
    """Figure 1 (MNIST): 6x6 grids of 36 units per layer, DBN and SDAE; 4 SDAE layer-3 units' restarts."""
    return layer_figure(dbn, sdae, n_units=n_units, restart_units=restart_units, title="MNIST", scale=scale)


def figure2(
    dbn: StackResults | None,
    sdae: StackResults | None,
    *,
    n_units: int = 144,
    restart_units: Sequence[int] = (0, 1, 2, 3),
    title: str = "natural image patches",
    scale: int = 1,
) -> FigureImage:
    """Figure 2 (natural patches): as Figure 1 with 12x12 grids of 144 units (fewer if fewer were studied)."""
    return layer_figure(dbn, sdae, n_units=n_units, restart_units=restart_units, title=title, scale=scale)


# ------------------------------------------------------------------------------------------ selectivity inset


def _framed(name: str, image: np.ndarray, scale: int) -> _Block:
    """``image`` enlarged by ``scale`` inside a ``scale``-pixel mid-grey frame (white cells stay visible)."""
    inner = _panel(name, image, scale)
    out = _Block(np.full((inner.height + 2 * scale, inner.width + 2 * scale), 0.5))
    out.image[scale:-scale, scale:-scale] = inner.image
    out.boxes[name] = (scale, scale, inner.height, inner.width)
    return out


def row_margins(m: np.ndarray) -> np.ndarray:
    """(U,) per row of a (U, U) selectivity matrix: the diagonal minus the largest other entry, as
    ``unitlens.analysis.selectivity`` defines it (> 0 when the row's pattern excites its own unit most)."""
    off = np.where(np.eye(m.shape[0], dtype=bool), -np.inf, m)
    return np.diagonal(m) - off.max(axis=1)


def selectivity_figure(
    results: StackResults,
    *,
    layer: int | None = None,
    cell: int = 6,
    stretch: bool | None = None,
    title: str | None = None,
    scale: int = 1,
) -> FigureImage:
    """The selectivity matrix as an enlarged grey image (the inset next to Figure 1).

    Entry (i, j) (row i: unit i's optimum x*, column j: unit j's response, columns normalised) is a
    ``cell * scale`` square of grey level M[i, j]: 0 black, 1 white. The box ``"matrix"`` holds exactly
    those squares. A matrix whose values all lie close together (top layers saturate: every entry near 1)
    shows as a flat square that way, so a second copy, box ``"matrix_stretched"``, maps its own minimum
    to black and maximum to white. The caption gives the value range, the normalisation (columns sum to 1)
    and the rows' margins (diagonal minus the largest other entry, as ``unitlens.analysis.selectivity``).
    ``write_figures`` draws the colour version, ``unitlens.render.plots.selectivity_plot``.

    Args:
        results: one stack's results.
        layer: the layer; None: the highest layer that has a matrix.
        cell: pixels per entry before ``scale``.
        stretch: add the stretched copy; None: when the values span less than half of [0, 1].

    Raises:
        UnitlensError: no such layer, a bad ``cell`` or ``scale``.
    """
    scale = _check_scale(scale)
    stack = _Stack(results, title or "results")
    if isinstance(cell, bool) or not isinstance(cell, int | np.integer) or cell < 1:
        raise UnitlensError(f"cell: expected an integer >= 1, got {cell!r}")
    if layer is None:  # the highest layer with a matrix (a user model's 1-unit layer has none)
        layer = max((j for j in stack.layers if stack.selectivity(j) is not None), default=stack.layers[-1])
    m = stack.selectivity(layer)
    if m is None:
        raise UnitlensError(
            f"results {stack.name}: no layer{layer}/selectivity (layers with one: "
            f"{[j for j in stack.layers if stack.selectivity(j) is not None]})"
        )
    n = m.shape[0]
    low, high = float(m.min()), float(m.max())
    if stretch is None:
        stretch = high - low < 0.5
    size = _font_size(scale)
    panels: list[_Block | None] = [
        _column([_text("values", size - 2), _framed("matrix", upscale(m, cell), scale)], 0)
    ]
    if stretch:
        spread = (m - low) / (high - low) if high > low else np.full_like(m, 0.5)
        label = _text(f"stretched: {low:.4g} black, {high:.4g} white", size - 2)
        panels.append(_column([label, _framed("matrix_stretched", upscale(spread, cell), scale)], 0))
    margin = row_margins(m)
    head = f"{title + ': ' if title else ''}selectivity, layer {layer}"
    caption = [
        _text(
            f"rows: x* of unit i, columns: unit j (each sums to 1); values {low:.3g} to {high:.3g}", size - 2
        ),
        _text(
            f"diagonal above every other entry: {int((margin > 0).sum())}/{n} rows; "
            f"median margin {float(np.median(margin)):.3g}",
            size - 2,
        ),
    ]
    body = _column([_text(head, size), _row(panels, 6 * scale), *caption], scale)
    out = _pad(body, 3 * scale)
    return FigureImage(out.image, out.boxes, tuple(out.missing))


# ------------------------------------------------------------------------------------------ Figures 3 and 4


def _samples_panel(
    stack: _Stack | None,
    name: str,
    label: str,
    layer: int,
    units: Sequence[int] | None,
    n_units: int,
    scale: int,
    size: int,
) -> _Block:
    title = _text(f"{label}: DBN layer {layer}, samples with one unit clamped on", size)
    samples = None if stack is None else stack.samples(layer)
    if stack is None or samples is None:
        reason = f"no {label} DBN results" if stack is None else f"no layer {layer} samples"
        return _column([title, _placeholder(name, reason, 6 * size, 30 * size, scale)], scale, centre=False)
    pos = _positions(units, n_units, samples.shape[0], f"{stack.name} layer {layer} samples")
    n_samples = samples.shape[1]
    grid = tile_images(samples[pos].reshape(-1, stack.d), stack.image_shape, grid=(len(pos), n_samples))
    ids = stack.unit_ids(layer)
    labels = _row_labels([f"unit {ids[u]}" for u in pos], stack.spatial[0], scale, size)
    return _column([title, _row([labels, _panel(name, grid, scale)], 2 * scale)], scale, centre=False)


def samples_figure(
    panels: Sequence[tuple[str, str, StackResults | None]],
    *,
    layer: int = 2,
    units: Sequence[int] | None = None,
    n_units: int = 6,
    scale: int | Sequence[int] = 1,
) -> FigureImage:
    """Figure 3: one row of clamped samples per unit, one panel per ``(name, label, dbn results)``.

    Rows are the units at positions ``units`` (default: the first ``n_units`` studied), in that order;
    a panel whose stack or samples are missing is a labelled placeholder. Panel boxes are named by
    ``name``; each is a ``(units, samples)`` tile grid. ``scale`` is one enlargement for all panels or
    one per panel (so digits and smaller patches can be shown at similar sizes).
    """
    if not panels:
        raise UnitlensError("samples figure: expected at least one panel")
    scales = [scale] * len(panels) if isinstance(scale, int | np.integer) else list(scale)
    if len(scales) != len(panels):
        raise UnitlensError(f"scale: expected one integer or {len(panels)}, got {scale!r}")
    scales = [_check_scale(s) for s in scales]
    size, gap = _font_size(max(scales)), max(scales)
    blocks: list[_Block | None] = [
        _samples_panel(_stack(r, f"{name}-dbn"), name, label, layer, units, n_units, sc, size)
        for (name, label, r), sc in zip(panels, scales, strict=True)
    ]
    out = _pad(_column(blocks, 8 * gap, centre=False), 3 * gap)
    return FigureImage(out.image, out.boxes, tuple(out.missing))


def figure3(
    mnist_dbn: StackResults | None,
    patches_dbn: StackResults | None,
    *,
    layer: int = 2,
    units: Sequence[int] | None = None,
    n_units: int = 6,
    scale: int | Sequence[int] = 1,
) -> FigureImage:
    """Figure 3: 6 units of DBN layer 2, a row of clamped samples each; MNIST, then patches.

    Panels ``"mnist"`` and ``"patches"``; see ``samples_figure``.
    """
    return samples_figure(
        [("mnist", "MNIST", mnist_dbn), ("patches", "patches", patches_dbn)],
        layer=layer,
        units=units,
        n_units=n_units,
        scale=scale,
    )


def figure4(
    dbn: StackResults,
    *,
    layer: int = 2,
    units: Sequence[int] | None = None,
    n_units: int = 6,
    title: str | None = None,
    scale: int = 1,
) -> FigureImage:
    """Figure 4: the same units three ways, side by side: mean of clamped samples | linear combination | AM.

    Rows are the units at positions ``units`` (default: the first ``n_units`` studied), in the same order
    as ``figure3`` with the same arguments. Columns are ``(rows, 1)`` tile grids named
    ``"samples_mean"``, ``"lc"`` and ``"am"``; a method the results lack is a labelled placeholder.

    Raises:
        UnitlensError: the results have no such layer, a unit position out of range.
    """
    scale = _check_scale(scale)
    stack = _Stack(dbn, title or "dbn")
    methods = {
        "samples_mean": ("mean of\nsamples", stack.samples_mean(layer)),
        "lc": ("linear\ncombination", stack.linear_combination(layer)),
        "am": ("AM", stack.am_best(layer)),
    }
    counts = [v.shape[0] for _, v in methods.values() if v is not None]
    if not counts:
        raise UnitlensError(f"results {stack.name}: layer {layer} has no samples, linear combination or AM")
    pos = _positions(units, n_units, min(counts), f"{stack.name} layer {layer}")
    size = _font_size(scale)
    h, w = _grid_size(len(pos), stack.spatial, (len(pos), 1))
    ids = stack.unit_ids(layer)
    header: list[_Block | None] = [None]
    body: list[_Block | None] = [_row_labels([f"unit {ids[u]}" for u in pos], stack.spatial[0], scale, size)]
    for name, (label, images) in methods.items():
        header.append(_text(label, size))
        if images is None:
            body.append(_placeholder(name, "not in\nresults", h * scale, w * scale, scale))
        else:
            body.append(_panel(name, tile_images(images[pos], stack.image_shape, grid=(len(pos), 1)), scale))
    table = _table([header, body], 4 * scale, 2 * scale)
    heading = _text(f"{title}, layer {layer}" if title else f"layer {layer}", size)
    out = _pad(_column([heading, table], 2 * scale), 3 * scale)
    return FigureImage(out.image, out.boxes, tuple(out.missing))


# ------------------------------------------------------------------------------------------ a user's model


def column_kind(columns: Iterable[str]) -> str:
    """What the columns of a side-by-side figure are: ``"model"`` when they are a user's data set's DBN and
    SDAE (``unitlens.catalogue.MODELS``), else ``"recipe"`` (one model under several recipes)."""
    return "model" if set(columns) <= set(MODELS) else "recipe"


def split_results_name(stem: str, recipe: str | None = None) -> tuple[str, str | None]:
    """A user model's results stem ``NAME-RECIPE`` -> ``(NAME, RECIPE)``.

    ``recipe`` is the results' own (their summary's ``"recipe"``): when the stem ends with ``-{recipe}`` the
    split is there, so a NAME may hold hyphens (``my-net-lucid`` -> ``("my-net", "lucid")``). Without it the
    stem is split at its last hyphen; a stem without one is its own NAME, with ``recipe`` (maybe None).
    """
    if recipe and stem.endswith(f"-{recipe}") and len(stem) > len(recipe) + 1:
        return stem[: -len(recipe) - 1], recipe
    if "-" in stem:
        name, _, suffix = stem.rpartition("-")
        if name and suffix:
            return name, suffix
    return stem, recipe


def _model_units(spatial: tuple[int, int]) -> int:
    # 36 units (6 x 6) per layer as for the digits, fewer for large inputs so a figure stays a few
    # thousand pixels wide: 16 up to 128 pixels, 9 beyond (224 x 224 inputs: 3 x 3 tiles per layer).
    side = max(spatial)
    return 36 if side <= 64 else 16 if side <= 128 else 9


def _model_scale(spatial: tuple[int, int]) -> int:
    # Tiles of about 48 pixels: 8x8 x6, 32x32 x2; large inputs are shown as they are.
    return max(1, math.ceil(48 / max(spatial)))


_MAX_NAMED = 8
"""Dead or flat units named one by one under a user model's figure; beyond that, a count."""


def _model_flagged(stack: _Stack, layer: int, positions: Sequence[int], label: str) -> str:
    """``"conv1 units [3, 7]"``: the shown units of ``layer`` that are dead or flat, or ``""``."""
    flags = stack.flat(layer)
    if flags is None:
        return ""
    ids = stack.unit_ids(layer)
    shown = [int(ids[p]) for p in positions if flags[p]]
    if len(shown) > _MAX_NAMED:  # a layer of mostly dead units: a count, not a line wider than the figure
        listed = ", ".join(str(u) for u in shown[:_MAX_NAMED])
        return f"{label}: {len(shown)} of {len(positions)} shown units, {listed}, ..."
    return f"{label} unit{'s' if len(shown) > 1 else ''} {shown}" if shown else ""


def _flag_note(parts: Sequence[str], size: int) -> _Block | None:
    """The DBN figures' mark for dead or flat units (see ``_flagged_caption``), for a user's model."""
    named = [p for p in parts if p]
    return _text("dead or flat, not features: " + "; ".join(named), size - 2) if named else None


def _model_font(scale: int) -> int:
    # Small inputs are enlarged a lot (8x8 x6): labels follow the scale only up to 3, or they dwarf the tiles.
    return _font_size(min(scale, 3))


def _titled(title: str, body: _Block, notes: Sequence[_Block | None], scale: int) -> FigureImage:
    size = _model_font(scale)
    blocks = [b for b in (body, *notes) if b is not None]
    out = _column([_text(title, size + 2), _column(blocks, 2 * scale, centre=False)], 2 * scale)
    out = _pad(out, 3 * scale)
    return FigureImage(out.image, out.boxes, tuple(out.missing))


def _wrap(blocks: Sequence[_Block], per_row: int) -> list[list[_Block | None]]:
    return [list(blocks[i : i + per_row]) for i in range(0, len(blocks), per_row)]


def model_layers_figure(
    results: StackResults,
    *,
    title: str | None = None,
    n_units: int | None = None,
    per_row: int = 4,
    scale: int | None = None,
) -> FigureImage:
    """A user model's results: every layer's first ``n_units`` units' best AM images, one block per layer.

    Each block is a heading (the layer's name, from ``layer_names``, else "layer j") over a near-square
    ``tile_images`` grid of the units' best restarts (RGB when the inputs are); blocks go ``per_row`` to a
    row, in layer order. Boxes are named ``"layer{j}"``. Dead or flat units shown are named under the blocks,
    as in the DBN figures.

    Args:
        n_units: units per layer (fewer when fewer were studied); None: 36, fewer for large inputs.
        scale: enlargement; None: tiles of about 48 pixels.
    """
    stack = _Stack(results, title or "results")
    scale = _check_scale(_model_scale(stack.spatial) if scale is None else scale)
    n_units = _model_units(stack.spatial) if n_units is None else n_units
    if n_units < 1:
        raise UnitlensError(f"n_units: expected >= 1, got {n_units}")
    if per_row < 1:
        raise UnitlensError(f"per_row: expected >= 1, got {per_row}")
    size = _model_font(scale)
    blocks, flagged = [], []
    for j in stack.layers:
        lr = results.layers[j]
        pos = list(range(min(n_units, lr.n_units)))
        name = results.layer_name(j)
        head = _text(f"{name} ({len(pos)} of {lr.n_units} units)" if len(pos) < lr.n_units else name, size)
        grid = _panel(f"layer{j}", tile_images(stack.as_pixels(lr.best_x()[pos]), stack.image_shape), scale)
        blocks.append(_column([head, grid], scale))
        flagged.append(_model_flagged(stack, j, pos, name))
    body = _table(_wrap(blocks, per_row), 8 * scale, 4 * scale, centre=False)
    what = f"{title}: " if title else ""
    recipe = f", {results.recipe} recipe" if results.recipe else ""
    return _titled(f"{what}best AM image of each unit{recipe}", body, [_flag_note(flagged, size)], scale)


def model_restarts_figure(
    results: StackResults,
    *,
    title: str | None = None,
    units: Sequence[int] = (0, 1, 2, 3),
    scale: int | None = None,
) -> FigureImage:
    """A user model's AM restarts: a row per layer, a grid per unit of all its restarts, most active first.

    Rows are the layers (labelled by name); in each, the studied units at positions ``units`` (those the
    layer has), each a near-square grid of its R restarts sorted by final activation, captioned with its
    unit number and "(dead)" / "(flat)" for flagged units. Boxes ``"layer{j}/restarts/{k}"`` (k-th shown
    unit). Whether the restarts agree is the first thing to check of a visualization.
    """
    stack = _Stack(results, title or "results")
    scale = _check_scale(_model_scale(stack.spatial) if scale is None else scale)
    size = _model_font(scale)
    rows: list[list[_Block | None]] = []
    flagged = []
    for j in stack.layers:
        data = stack.restarts_by_activation(j)
        assert data is not None  # every layer of the results has its restarts
        x, _ = data
        positions = [int(u) for u in units if 0 <= int(u) < x.shape[0]]
        ids = stack.unit_ids(j)
        name = results.layer_name(j)
        row: list[_Block | None] = [_text(name, size)]
        for k, u in enumerate(positions):
            word = stack.flag_word(j, u)
            label = _text(f"unit {ids[u]}" + (f" ({word})" if word else ""), size - 2)
            row.append(
                _column(
                    [label, _panel(f"layer{j}/restarts/{k}", tile_images(x[u], stack.image_shape), scale)],
                    scale,
                )
            )
        rows.append(row)
        flagged.append(_model_flagged(stack, j, positions, name))
    body = _table(rows, 6 * scale, 4 * scale)
    what = f"{title}: " if title else ""
    recipe = f", {results.recipe} recipe" if results.recipe else ""
    heading = f"{what}AM restarts of {len(units)} units per layer, most active first{recipe}"
    return _titled(heading, body, [_flag_note(flagged, size)], scale)


def recipes_figure(
    by_recipe: Mapping[str, StackResults],
    *,
    title: str | None = None,
    n_units: int | None = None,
    scale: int | None = None,
) -> FigureImage:
    """One model under several recipes: rows = layers, columns = recipes, the same units in every cell.

    Cell (layer j, recipe r) is a near-square grid of the best AM images of the first ``n_units`` unit
    numbers that every recipe studied in layer j (in the first recipe's order), labelled
    ``"{layer name} / {recipe}"``; a recipe without layer j is a placeholder. Boxes ``"layer{j}/{recipe}"``.
    Dead or flat units are named under the table, per cell, as in the DBN figures.

    Args:
        by_recipe: recipe name -> that recipe's results of the same model, in column order.
        n_units: units per cell; None: 36, fewer for large inputs.
        scale: enlargement; None: tiles of about 48 pixels.

    Raises:
        UnitlensError: no results, a bad ``n_units`` or ``scale``.
    """
    if not by_recipe:
        raise UnitlensError("recipes figure: expected the results of at least one recipe")
    stacks = {r: _Stack(res, f"{title or 'model'}-{r}") for r, res in by_recipe.items()}
    first = next(iter(stacks.values()))
    scale = _check_scale(_model_scale(first.spatial) if scale is None else scale)
    n_units = _model_units(first.spatial) if n_units is None else n_units
    if n_units < 1:
        raise UnitlensError(f"n_units: expected >= 1, got {n_units}")
    size = _model_font(scale)
    layers = sorted({j for s in stacks.values() for j in s.layers})
    rows: list[list[_Block | None]] = []
    flagged = []
    for j in layers:
        having = {r: s for r, s in stacks.items() if j in s.results.layers}
        name = next(s.results.layer_name(j) for s in having.values())
        # The same units in every column: unit numbers all recipes studied, in the first one's order.
        common = [int(u) for u in next(iter(having.values())).unit_ids(j)]
        for s in having.values():
            studied = set(s.unit_ids(j).tolist())
            common = [u for u in common if u in studied]
        shown = common[:n_units]
        nominal = _grid_size(max(len(shown), 1), first.spatial)
        labels: list[_Block | None] = []
        cells: list[_Block | None] = []
        for recipe, stack in stacks.items():
            labels.append(_text(f"{name} / {MODEL_LABELS.get(recipe, recipe)}", size))
            box = f"layer{j}/{recipe}"
            if recipe not in having or not shown:
                reason = f"no {name}\nin {recipe}" if recipe not in having else "no units\nin common"
                cell = _placeholder(box, reason, nominal[0] * scale, nominal[1] * scale, scale)
            else:
                index = {int(u): k for k, u in enumerate(stack.unit_ids(j))}
                pos = [index[u] for u in shown]
                best = stack.as_pixels(stack.results.layers[j].best_x()[pos])
                cell = _panel(box, tile_images(best, stack.image_shape), scale)
                flagged.append(_model_flagged(stack, j, pos, f"{name} / {recipe}"))
            cells.append(cell)
        # Labels in a row of their own, so that the grids of one layer share their top edge whatever the
        # labels' heights, and a blank row between layers.
        rows += [labels, cells, [_blank(3 * scale, 0)]]
    body = _table(rows[:-1], 8 * scale, scale)
    what = f"{title}: " if title else ""
    kind = column_kind(stacks)
    heading = f"{what}the same units' best AM images under each {kind} (rows: layers, columns: {kind}s)"
    return _titled(heading, body, [_flag_note(flagged, size)], scale)


# ------------------------------------------------------------------------------------------ files


def _scale_for(spatial: tuple[int, int]) -> int:
    # Tiles of about 36 pixels or more: 28x28 digits x2, 12x12 patches x3, 20x20 patches x2.
    return max(2, math.ceil(36 / spatial[0]))


def read_training_log(path: str | Path) -> list[dict[str, float]]:
    """Rows of a ``NAME-log.jsonl`` training history (one JSON object per line, blank lines skipped)."""
    rows: list[dict[str, float]] = []
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UnitlensError(f"{source}: could not read the training log ({exc})") from exc
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UnitlensError(f"{source}, line {i}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise UnitlensError(f"{source}, line {i}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def read_finetune(path: str | Path) -> dict[str, Any]:
    """The fine-tuning results ``results/finetune.json`` as an object (``UnitlensError`` naming the file)."""
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UnitlensError(f"{source}: could not read the fine-tuning results ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise UnitlensError(f"{source} is damaged: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise UnitlensError(f"{source}: expected a JSON object, got {type(data).__name__}")
    return data


MANIFEST = "manifest.json"
"""The file in a figures folder that lists its figures (:func:`read_manifest`)."""

FIGURE_KINDS = (
    "figure1",
    "figure2",
    "figure3",
    "figure4",
    "selectivity",
    "restart_agreement",
    "am_history",
    "training",
    "finetune_sweep",
    "model_layers",
    "model_restarts",
    "recipes",
)

_PAPER_CAPTIONS = {
    "figure1": "Figure 1: layer-1 filters and the AM optima of layers 2 and 3, DBN and SDAE",
    "figure2": "Figure 2: the same for natural image patches",
    "figure3": "Figure 3: samples of DBN layer-2 units, clamped on (one row per unit)",
    "figure4": "Figure 4: DBN layer 2, mean of clamped samples | linear combination | AM",
    "finetune_sweep": (
        "Fine-tuning sweep (claim 7): median cosine of the AM images before/after fine-tuning, and held-out "
        "error, against the pre-trained layers' learning rate; the claim's verdict depends on this rate and "
        "is judged at the marked one"
    ),
}


@dataclass(frozen=True)
class FigureEntry:
    """One figure of a figures folder, as its manifest lists it.

    Attributes:
        file: the PNG's name inside the folder (no sub-folders).
        kind: what it is, one of ``FIGURE_KINDS``.
        caption: the text shown with it.
        dataset, model, layer: what it shows; None where it is not one (Figure 3 shows two data sets). For
            a user's model, ``model`` is its NAME and ``dataset`` None.
        recipe: a user model's figure of one recipe's results (``"lucid"``); None otherwise (manifests
            written before recipes existed have no such field).
    """

    file: str
    kind: str
    caption: str
    dataset: str | None = None
    model: str | None = None
    layer: int | None = None
    recipe: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "dataset": self.dataset,
            "model": self.model,
            "recipe": self.recipe,
            "layer": self.layer,
            "caption": self.caption,
        }


def write_manifest(figures_dir: str | Path, entries: Sequence[FigureEntry]) -> Path:
    """Write ``figures_dir/manifest.json`` atomically: ``{"format": 1, "figures": [entry, ...]}``."""
    path = Path(figures_dir) / MANIFEST
    doc = {"format": 1, "figures": [e.to_dict() for e in entries]}
    write_bytes(path, (json.dumps(doc, indent=1) + "\n").encode("utf-8"))
    return path


def read_manifest(figures_dir: str | Path) -> tuple[FigureEntry, ...] | None:
    """The figures ``figures_dir/manifest.json`` lists, in its order; None when there is no manifest.

    Raises:
        UnitlensError: a damaged manifest, an entry without its fields, a file that is not a plain name
            inside the folder or does not exist there (the message names the manifest and the entry).
    """
    folder = Path(figures_dir)
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UnitlensError(f"{path}: could not read the figure manifest ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise UnitlensError(f"{path} is damaged: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    rows = doc.get("figures") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise UnitlensError(f'{path}: expected {{"format": 1, "figures": [{{"file": ..., ...}}, ...]}}')
    entries = []
    for i, row in enumerate(rows):
        where = f"{path}: figure [{i}]"
        if not isinstance(row, dict):
            raise UnitlensError(f"{where} is not an object")
        for key in ("file", "kind", "caption"):
            if not isinstance(row.get(key), str):
                raise UnitlensError(f"{where}: field {key!r} must be a string, got {row.get(key)!r}")
        for key in ("dataset", "model", "recipe"):
            if row.get(key) is not None and not isinstance(row[key], str):
                raise UnitlensError(f"{where}: field {key!r} must be a string or null, got {row[key]!r}")
        layer = row.get("layer")
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int)):
            raise UnitlensError(f"{where}: field 'layer' must be an integer or null, got {layer!r}")
        file = row["file"]
        if Path(file).name != file or file in ("", ".", ".."):
            raise UnitlensError(f"{where}: field 'file' must be a file name inside {folder}, got {file!r}")
        if not (folder / file).is_file():
            raise UnitlensError(f"{where}: {file} does not exist in {folder} (re-render the figures)")
        entries.append(
            FigureEntry(
                file,
                row["kind"],
                row["caption"],
                row.get("dataset"),
                row.get("model"),
                layer,
                row.get("recipe"),
            )
        )
    return tuple(entries)


def _restart_threshold(results: StackResults) -> float | None:
    """The cosine threshold the study judged restart agreement by (its summary), or None."""
    for j in results.layers:
        threshold = (results.layer_summary(j) or {}).get("restarts", {}).get("threshold")
        if isinstance(threshold, int | float) and not isinstance(threshold, bool):
            return float(threshold)
    return None


RECIPE_ORDER = ("paper", "lucid")
"""How recipes of one model are ordered (columns of the recipes figure, the report): these, then the rest."""


def recipe_order(recipe: str | None) -> tuple[int, str]:
    """Sort key of a recipe: ``RECIPE_ORDER`` first, then alphabetical; no recipe last."""
    if recipe in RECIPE_ORDER:
        return RECIPE_ORDER.index(recipe), ""
    return len(RECIPE_ORDER) + (recipe is None), recipe or ""


def is_paper_stack(stem: str) -> bool:
    """Whether ``stem`` names one of the paper's stacks (``mnist-dbn``; ``unitlens.catalogue``)."""
    try:
        split_stack_name(stem)
    except UnitlensError:
        return False
    return True


def _user_models(results_dir: Path) -> dict[str, dict[str | None, tuple[str, StackResults]]]:
    """The results of users' models in ``results_dir``: NAME -> recipe -> (file stem, results).

    Every ``*.npz`` that is not one of the paper's stacks; NAMEs alphabetical, recipes by ``recipe_order``.
    """
    found: dict[str, dict[str | None, tuple[str, StackResults]]] = {}
    for path in sorted(results_dir.glob("*.npz")):
        if is_paper_stack(path.stem):
            continue
        results = StackResults.load(path)
        name, recipe = split_results_name(path.stem, results.recipe)
        found.setdefault(name, {})[recipe] = (path.stem, results)
    return {n: dict(sorted(r.items(), key=lambda kv: recipe_order(kv[0]))) for n, r in sorted(found.items())}


def write_figures(
    results_dir: str | Path, figures_dir: str | Path, *, checkpoints_dir: str | Path | None = None
) -> list[Path]:
    """Render every figure and plot the results allow into ``figures_dir``; return the paths written.

    Reads ``results_dir/{dataset}-{model}.npz`` (``StackResults.load``, with its summary) for datasets
    ``DATASETS`` and models ``MODELS`` (absent files are skipped) and, when ``checkpoints_dir`` is given,
    its ``*-log.jsonl`` training histories. Writes, atomically, whichever apply:

    - ``figure1_mnist.png``; ``figure2_patches.png``, ``figure2_patches20.png`` (``layer_figure``);
    - ``selectivity_{dataset}_{model}_layer{j}.png`` for each layer j >= 2;
    - ``figure3.png`` (MNIST and patches DBN samples), ``figure4_{dataset}.png`` for each DBN;
    - ``restart_agreement_{dataset}_{model}.png``, ``am_history_{dataset}_{model}.png`` and
      ``training_{name}.png`` (``unitlens.render.plots``);
    - ``finetune_sweep.png`` when ``results_dir/finetune.json`` holds a fine-tuning sweep;

    and, for every other ``results_dir/*.npz`` (a user's model, ``NAME-RECIPE.npz``, see
    :func:`split_results_name`):

    - ``NAME-RECIPE-layers.png`` (``model_layers_figure``), ``NAME-RECIPE-restarts.png``
      (``model_restarts_figure``), ``NAME-RECIPE-restart_agreement.png``, ``NAME-RECIPE-am_history.png``
      and ``NAME-RECIPE-selectivity-layer{j}.png`` for each layer with a selectivity matrix;
    - ``NAME-recipes.png`` (``recipes_figure``) when two or more recipes of one NAME are there, columns in
      the order paper, lucid, then the others alphabetically;

    and last ``manifest.json`` (``write_manifest``), listing each figure written with its kind, data set,
    model, recipe, layer and caption: the report shows what the manifest lists, nothing else.

    Figures are enlarged (2x for digits, 3x for 12x12 patches, tiles of about 48 pixels for a user's model)
    for legibility. Re-running overwrites each file atomically with identical bytes.

    Raises:
        UnitlensError: ``results_dir`` missing, a damaged results file (``finetune.json`` included); the
            message names the file and the field.
    """
    # Imported here: matplotlib costs about a second to import; only writing the files needs it.
    from unitlens.render import plots

    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    if not results_dir.is_dir():
        raise UnitlensError(f"results folder {results_dir} does not exist")
    loaded: dict[tuple[str, str], StackResults] = {}
    for dataset in DATASETS:
        for model in MODELS:
            path = results_dir / f"{dataset}-{model}.npz"
            if path.is_file():
                loaded[dataset, model] = StackResults.load(path)
    user_models = _user_models(results_dir)

    written: list[Path] = []
    entries: list[FigureEntry] = []

    def record(name: str, kind: str, caption: str | None, **what: Any) -> None:
        written.append(figures_dir / name)
        caption = Path(name).stem.replace("_", " ") if caption is None else caption
        entries.append(FigureEntry(name, kind, caption, **what))

    def save(name: str, image: Any, kind: str, caption: str | None = None, **what: Any) -> None:
        save_png(figures_dir / name, image)
        record(name, kind, caption, **what)

    def save_bytes(name: str, data: bytes, kind: str, caption: str | None = None, **what: Any) -> None:
        write_bytes(figures_dir / name, data)
        record(name, kind, caption, **what)

    scales: dict[str, int] = {}
    for dataset in DATASETS:
        dbn, sdae = loaded.get((dataset, "dbn")), loaded.get((dataset, "sdae"))
        if dbn is None and sdae is None:
            continue
        stacks = {m: r for m, r in (("dbn", dbn), ("sdae", sdae)) if r is not None}
        words = DATASET_LABELS[dataset]
        scale = scales[dataset] = _scale_for(next(iter(stacks.values())).spatial)
        if dataset == "mnist":
            caption = f"{_PAPER_CAPTIONS['figure1']} ({words})"
            save("figure1_mnist.png", figure1(dbn, sdae, scale=scale), "figure1", caption, dataset=dataset)
        else:
            figure = figure2(dbn, sdae, title=f"natural image {words}", scale=scale)
            caption = f"{_PAPER_CAPTIONS['figure2']} ({words})"
            save(f"figure2_{dataset}.png", figure, "figure2", caption, dataset=dataset)
        for model, results in stacks.items():
            name, what = f"{words} {MODEL_LABELS[model]}", {"dataset": dataset, "model": model}
            for j in results.layers:
                if j >= 2:  # layer 1's optima are its filters: nothing to compare with a control
                    save_bytes(
                        f"selectivity_{dataset}_{model}_layer{j}.png",
                        plots.selectivity_plot(results, j, title=name),
                        "selectivity",
                        layer=j,
                        **what,
                    )
            threshold = _restart_threshold(results)
            agreement = (
                plots.restart_agreement_plot(results, title=name)
                if threshold is None
                else plots.restart_agreement_plot(results, threshold=threshold, title=name)
            )
            save_bytes(f"restart_agreement_{dataset}_{model}.png", agreement, "restart_agreement", **what)
            save_bytes(
                f"am_history_{dataset}_{model}.png",
                plots.activation_history_plot(results, title=name),
                "am_history",
                **what,
            )
        if dbn is not None and 2 in dbn.layers:
            caption = f"{_PAPER_CAPTIONS['figure4']} ({words})"
            figure = figure4(dbn, title=f"{words} DBN", scale=scale)
            save(f"figure4_{dataset}.png", figure, "figure4", caption, dataset=dataset, model="dbn", layer=2)

    mnist, patches = loaded.get(("mnist", "dbn")), loaded.get(("patches", "dbn"))
    if any(r is not None and 2 in r.layers and r.layers[2].samples is not None for r in (mnist, patches)):
        fig3 = figure3(mnist, patches, scale=(scales.get("mnist", 2), scales.get("patches", 3)))
        save("figure3.png", fig3, "figure3", _PAPER_CAPTIONS["figure3"], model="dbn", layer=2)

    if checkpoints_dir is not None and Path(checkpoints_dir).is_dir():
        for log in sorted(Path(checkpoints_dir).glob("*-log.jsonl")):
            name = log.name[: -len("-log.jsonl")]
            dataset, _, model = name.rpartition("-")
            what = {"dataset": dataset, "model": model} if dataset in DATASETS and model in MODELS else {}
            rows = read_training_log(log)
            save_bytes(
                f"training_{name}.png", plots.training_curves_plot(rows, title=name), "training", **what
            )

    for name, by_recipe in user_models.items():
        for recipe, (stem, results) in by_recipe.items():
            about = {"model": name, "recipe": recipe}
            words = f"{name}, {recipe} recipe" if recipe else name
            layers = ", ".join(results.layer_name(j) for j in results.layers)
            save(
                f"{stem}-layers.png",
                model_layers_figure(results, title=name),
                "model_layers",
                f"{words}: best AM image of each studied unit, one block per layer ({layers})",
                **about,
            )
            save(
                f"{stem}-restarts.png",
                model_restarts_figure(results, title=name),
                "model_restarts",
                f"{words}: every AM restart of the first units of each layer, most active first",
                **about,
            )
            threshold = _restart_threshold(results)
            agreement = (
                plots.restart_agreement_plot(results, title=words)
                if threshold is None
                else plots.restart_agreement_plot(results, threshold=threshold, title=words)
            )
            save_bytes(
                f"{stem}-restart_agreement.png",
                agreement,
                "restart_agreement",
                f"{words}: agreement of each unit's AM restarts (mean pairwise cosine), per layer",
                **about,
            )
            save_bytes(
                f"{stem}-am_history.png",
                plots.activation_history_plot(results, title=words),
                "am_history",
                f"{words}: activation against AM step for each restart of the first units",
                **about,
            )
            for j, lr in results.layers.items():
                if lr.selectivity is not None and lr.selectivity.shape[0] >= 2:
                    save_bytes(
                        f"{stem}-selectivity-layer{j}.png",
                        plots.selectivity_plot(results, j, title=words),
                        "selectivity",
                        f"{words}: selectivity of {results.layer_name(j)} (rows: each unit's AM image)",
                        layer=j,
                        **about,
                    )
        if len(by_recipe) >= 2:
            columns = {recipe or stem: results for recipe, (stem, results) in by_recipe.items()}
            save(
                f"{name}-recipes.png",
                recipes_figure(columns, title=name),
                "recipes",
                f"{name}: the same units' best AM images under each "
                f"{column_kind(columns)} ({', '.join(columns)}); rows are "
                "layers",
                model=name,
            )

    finetune_path = results_dir / "finetune.json"
    if finetune_path.is_file():
        finetune = read_finetune(finetune_path)
        if finetune.get("sweep"):
            try:
                tuned_on = finetune.get("dataset", "mnist")  # older runs: the digits
                title = "MNIST fine-tuning (claim 7)" if tuned_on == "mnist" else f"{tuned_on}: fine-tuning"
                sweep = plots.finetune_sweep_plot(finetune, title=title)
            except UnitlensError as exc:
                raise UnitlensError(f"{finetune_path}: {exc}") from exc
            save_bytes(
                "finetune_sweep.png",
                sweep,
                "finetune_sweep",
                _PAPER_CAPTIONS["finetune_sweep"],
                dataset="mnist",
            )
    write_manifest(figures_dir, entries)
    return written
