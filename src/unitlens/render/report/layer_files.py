"""The report's data files for its unit browser, and the reader that mirrors the browser.

A report of 1000 units in each of 3 layers of 6 stacks holds about 700,000 images. Putting them in one
script made the page load every image before it could show one, and base64 made the file a third larger
than its bytes. Here the data are split so that opening a layer loads what it shows first, and nothing
is stored twice (``write_report`` writes them into ``report/data/``):

- ``s{STACK}-l{LAYER}.js``, a layer's **index file**: its numbers (kept as numbers: every per-unit field of
  ``unitlens.results.LayerResults`` that the browser shows), the study's thresholds, each image kind's
  display rule and value range over the layer, the selectivity matrix, and the **thumbnails**, one image
  per unit (layer 1's filter, else its best AM restart), which the unit index draws;
- ``s{STACK}-l{LAYER}-c{C}.js``, its **chunks**: every image of ``CHUNK_UNITS`` units at a time, loaded
  when one of those units is shown;
- ``e{N}.js``, a **shared table**: the exemplars of the stacks on one data set. Exemplars are training
  rows, and the same rows come back in every layer of every stack on that data set.

Each file is one call, ``UNITLENS_LAYER({...JSON...}, "...bytes...");`` (a ``<script>`` tag added to the
page works from ``file://``, where the fetch API is refused):

- **The JSON** is ASCII only; it says where each section of the bytes lies.
- **The bytes** are a JavaScript string literal with one character per byte. ``index.html`` declares the
  ``windows-1252`` encoding, which a script without a byte-order mark inherits, so the browser decodes
  each byte to one character; 27 bytes of 0x80-0x9F decode to other code points (``WINDOWS_1252``), which
  the reader maps back. Five bytes are escaped (``\\``, ``"``, line feed, carriage return, NUL), so the
  string costs about 1.02 bytes per byte instead of base64's 1.33.
- **Sections** of the bytes are each zlib-compressed on their own (the browser's ``DecompressionStream
  ("deflate")``). An index file has ``thumbs`` (uint8, one row per unit), ``thumb_ranges`` and
  ``selectivity`` (uint8, on one scale); a chunk ``table`` (uint8, its distinct images, one row each),
  ``rows`` (uint32, for every image of its units, kind after kind, its row), ``bases`` (int32 per row of
  ``table``: -1, or the row it is a difference from) and ``ranges`` (float32 ``(images, 2)``: the value of
  level 0 and of level 255 of each image); a shared table only ``table``.

**Rows.** A chunk's rows are numbered after its layer's thumbnails: rows ``0 .. units - 1`` are the
thumbnails, its ``table`` holds the rows after them. An image whose levels equal an earlier one's (the
layer-1 filters and linear combination are the thumbnails; restarts that reach the same optimum) is a
reference to it. A unit's other images of one kind (restarts, samples) are stored as their difference
modulo 256 from its lead image (its best restart; the first of the others) where that compresses better,
which it does for restarts that agree. A kind whose entry names ``"shared"`` indexes that shared table.

**Images** are quantised by the paper's display rule (``quantise_images``: each image scaled on its own,
8 bits, channel-major). Each keeps its value range, so the browser can redraw a unit or a layer on one
common scale: the value of level ``q`` is ``lo + (hi - lo) * q / 255``.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from unitlens.errors import UnitlensError
from unitlens.render.tiles import tile_images
from unitlens.results import ImageShape, LayerResults, StackResults, display_shape

__all__ = [
    "CHUNK_UNITS",
    "FLOAT_KEYS",
    "IMAGE_KEYS",
    "INT_KEYS",
    "LAYER_CALLBACK",
    "WINDOWS_1252",
    "LayerFile",
    "LayerFiles",
    "SharedImages",
    "decode_bytes_literal",
    "encode_bytes_literal",
    "image_ranges",
    "layer_files",
    "nested_get",
    "quantise_images",
    "read_layer",
    "read_shared_file",
    "shared_file_text",
]

LAYER_CALLBACK = "UNITLENS_LAYER"
"""The function each layer file calls; ``explorer.js`` defines it."""

# Image fields (unitlens.results.LayerResults) carried to the browser, in the order panels show them.
# Shapes (U, d) or (U, k, d).
IMAGE_KEYS = ("filters", "am_x", "samples", "samples_mean", "lc", "exemplars")
# Per-unit numbers carried to the browser: float arrays (U,) or (U, k), and integer ones.
FLOAT_KEYS = (
    "am_activation",
    "am_stationarity",
    "exemplar_activations",
    "restart_mean_cosine",
    "energy_concentration",
    "lc_vs_am",
    "samples_vs_am",
)
INT_KEYS = ("units", "am_best", "am_steps", "am_converged", "flat", "dead", "exemplar_labels")

# The bytes 0x80-0x9F that the WHATWG windows-1252 decoder maps to code points other than their own; the
# other 229 bytes decode to the code point of the same number.
WINDOWS_1252 = {
    0x80: 0x20AC, 0x82: 0x201A, 0x83: 0x0192, 0x84: 0x201E, 0x85: 0x2026, 0x86: 0x2020, 0x87: 0x2021,
    0x88: 0x02C6, 0x89: 0x2030, 0x8A: 0x0160, 0x8B: 0x2039, 0x8C: 0x0152, 0x8E: 0x017D, 0x91: 0x2018,
    0x92: 0x2019, 0x93: 0x201C, 0x94: 0x201D, 0x95: 0x2022, 0x96: 0x2013, 0x97: 0x2014, 0x98: 0x02DC,
    0x99: 0x2122, 0x9A: 0x0161, 0x9B: 0x203A, 0x9C: 0x0153, 0x9E: 0x017E, 0x9F: 0x0178,
}  # fmt: skip
# zlib's level for every section. On benchmarks/report_scale.py's 1000-unit report (2026-12-04) level 9
# wrote it in 74 s and 69.2 MB, level 6 in 16 s and 70.2 MB: level 9's longer searches buy little on noisy
# images and cost most on the binary samples of MNIST.
_LEVEL = 6
CHUNK_UNITS = 100
"""Units per chunk file: opening a unit loads its chunk only (about 1 MB for 100 units of 20x20 DBN
images), so a layer of thousands of units opens as fast as one of a hundred."""
_ESCAPES = ((b"\\", b"\\\\"), (b'"', b'\\"'), (b"\n", b"\\n"), (b"\r", b"\\r"), (b"\x00", b"\\x00"))
_UNESCAPE = re.compile(rb"\\(x00|[\\\"nr])")
_UNESCAPED = {b"x00": b"\x00", b"\\": b"\\", b'"': b'"', b"n": b"\n", b"r": b"\r"}


def encode_bytes_literal(data: bytes) -> bytes:
    """``data`` as the body of a double-quoted JavaScript string in a windows-1252 script (no quotes)."""
    for raw, escaped in _ESCAPES:  # the backslash first, so later escapes are not escaped again
        data = data.replace(raw, escaped)
    return data


def decode_bytes_literal(body: bytes) -> bytes:
    """Inverse of ``encode_bytes_literal`` (what the browser's decoding and ``explorer.js`` undo)."""
    return _UNESCAPE.sub(lambda m: _UNESCAPED[m.group(1)], body)


# ---------------------------------------------------------------------------------------------------------
# Images


def quantise_images(images: np.ndarray, image_shape: ImageShape, signed: bool) -> np.ndarray:
    """Scale each image on its own for display and quantise it to 8 bits.

    Args:
        images: ``(n, d)`` real values, d = ``prod(image_shape)``; colour images flattened channel-major.
        image_shape: ``(h, w)`` grey, or ``(c, h, w)`` with c = 1 or 3.
        signed: True: ``0.5 + 0.5 * x / max|x|`` (zero is mid grey); False: stretched from min to max
            (see ``unitlens.render.tiles.scale_tile``). An RGB image's channels share its scale.

    Returns:
        uint8 ``(n, d)`` in the input's order (channel-major for RGB): ``round(255 * scaled)``, within half
        a level of the scaled value; for vectors ``image_shape`` ``(d,)``, ``(n, h * w)``: their bar plots
        (``display_shape``), which the browser draws as grey images.
    """
    flat = np.asarray(images, dtype=np.float64)
    n = flat.shape[0]
    # A one-column grid without borders scales every tile on its own in one vectorised call.
    panel = tile_images(flat, image_shape, grid=(n, 1), signed=signed, border=0)
    if panel.ndim == 3:  # (n*h, w, 3), channels last -> back to the results' (n, 3, h, w) order
        h, w = display_shape(image_shape)
        panel = panel.reshape(n, h, w, 3).transpose(0, 3, 1, 2)
    return np.rint(panel.reshape(n, -1) * 255.0).astype(np.uint8)


def image_ranges(images: np.ndarray, signed: bool) -> np.ndarray:
    """``(n, 2)`` float64: the values that levels 0 and 255 of each image stand for (``quantise_images``).

    Signed: ``(-max|x|, max|x|)``. Unsigned: ``(min, max)``; a constant image in [0, 1] keeps its value
    (``scale_tile``), so its levels are values times 255: ``(0, 1)``; any other constant one is grey:
    ``(c, c)``. The value of level ``q`` is ``lo + (hi - lo) * q / 255`` (exact up to the quantisation).
    """
    x = np.asarray(images, dtype=np.float64)
    if signed:
        m = np.abs(x).max(axis=1)
        return np.stack([-m, m], axis=1)
    lo, hi = x.min(axis=1), x.max(axis=1)
    out = np.stack([lo, hi], axis=1)
    constant = lo == hi
    inside = constant & (lo >= 0.0) & (lo <= 1.0)
    out[inside] = (0.0, 1.0)
    return out


@dataclass
class _Images:
    """Distinct images (rows of levels) as they are added; row numbers start at ``offset``.

    A chunk's table continues its layer's thumbnails (rows ``0 .. offset - 1``, in the layer's index file),
    so an image equal to a thumbnail, or a difference from one, refers to it instead of repeating it.
    """

    offset: int
    rows: list[bytes]
    bases: list[int]
    index: dict[tuple[int, bytes], int]

    @classmethod
    def empty(cls, offset: int = 0) -> _Images:
        return cls(offset, [], [], {})

    def add(self, levels: np.ndarray, base: int = -1) -> int:
        """The row of ``levels`` (uint8, a difference modulo 256 from row ``base`` when >= 0)."""
        key = (base, levels.tobytes())
        row = self.index.get(key)
        if row is None:
            row = self.index[key] = self.offset + len(self.rows)
            self.rows.append(key[1])
            self.bases.append(base)
        return row


def _add_kind(table: _Images, q: np.ndarray, per_unit: int, lead: np.ndarray) -> list[int]:
    """Add one kind's images (``q`` ``(units * per_unit, width)``, unit-major) and return their rows.

    Each unit's ``lead`` image (its best restart for AM, else its first) goes in as it is; its others go
    in as differences from it (mod 256) when that compresses smaller, which it does for restarts that
    agree (``zlib`` at level 1 is the judge: it ranks the two like level 9 does, at a fraction of the time).
    """
    blocks = q.reshape(-1, per_unit, q.shape[1])
    out: list[int] = []
    for u, block in enumerate(blocks):
        k = int(lead[u])
        base = table.add(block[k])
        rows = [0] * per_unit
        rows[k] = base
        others = [i for i in range(per_unit) if i != k]
        if others:
            rest = block[others]
            delta = (rest.astype(np.int16) - block[k].astype(np.int16)).astype(np.uint8)
            use_delta = len(zlib.compress(delta.tobytes(), 1)) < len(zlib.compress(rest.tobytes(), 1))
            for i, levels, diff in zip(others, rest, delta, strict=True):
                rows[i] = table.add(diff, base) if use_delta else table.add(levels)
        out.extend(rows)
    return out


# ---------------------------------------------------------------------------------------------------------
# Numbers


def _floats(arr: np.ndarray, digits: int) -> Any:
    """``arr`` as nested lists of floats with ``digits`` significant digits (None where not finite)."""
    x = np.asarray(arr, dtype=np.float64)
    if not x.size:
        return x.tolist()
    text = np.char.mod(f"%.{digits}g", np.where(np.isfinite(x), x, 0.0))
    values = text.astype(np.float64).astype(object)
    values[~np.isfinite(x)] = None
    return values.tolist()


def nested_get(d: Any, *path: str) -> Any:
    """``d[path[0]][path[1]]...``, or None where a key is missing or a value is not a mapping."""
    for p in path:
        if not isinstance(d, Mapping) or p not in d:
            return None
        d = d[p]
    return d


def _numbers(a: LayerResults) -> dict[str, Any]:
    numbers: dict[str, Any] = {}
    for name in FLOAT_KEYS:
        if (arr := getattr(a, name)) is not None:
            # Restarts that agree differ in the 5th digit of their activation: keep their spread visible.
            numbers[name] = _floats(arr, 7 if name == "am_activation" else 4)
    for name in INT_KEYS:
        if (arr := getattr(a, name)) is not None:
            numbers[name] = arr.astype(np.int64).tolist()
    return numbers


def _selectivity(a: LayerResults) -> tuple[dict[str, Any], np.ndarray] | None:
    """The selectivity matrix's numbers and its levels on one scale, or None."""
    if a.selectivity is None or not a.selectivity.size:
        return None
    s = a.selectivity.astype(np.float64)
    us = s.shape[0]
    diag = np.diag(s).copy()
    others = np.where(np.eye(us, dtype=bool), -np.inf, s)
    # Columns sum to 1, so values are small: one scale for the whole matrix, its maximum, said beside it.
    top = float(s.max()) or 1.0
    info = {
        "n": us,
        "scale_max": _floats(np.array(top), 4),
        "margin": _floats(diag - others.max(axis=1), 4) if us > 1 else [None] * us,
        "diagonal": _floats(diag, 4),
        "max_other": _floats(others.max(axis=1), 4) if us > 1 else [None] * us,
        "argmax_other": others.argmax(axis=1).tolist() if us > 1 else [None] * us,
    }
    return info, np.rint(np.clip(s / top, 0.0, 1.0) * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# Files


@dataclass
class SharedImages:
    """Distinct images that several layers share, in a file of their own (``data/{key}.js``).

    The exemplars are rows of the training set, and the same rows come back in every layer of every
    stack on that data set (at 1000 units per layer, a data set's six layers hold 9 x 6000 exemplars but
    only 11-16 % distinct rows in ``benchmarks/report_scale.py``): stored once here, each chunk refers
    to them by row. Layer files are written first (they fill the table), this file after them.
    """

    key: str
    table: _Images

    @classmethod
    def empty(cls, key: str) -> SharedImages:
        return cls(key, _Images.empty())


def _pack(arrays: dict[str, np.ndarray]) -> tuple[dict[str, Any], bytes]:
    """Each array zlib-compressed on its own, one after the other: (where each lies, the bytes)."""
    sections: dict[str, Any] = {}
    parts: list[bytes] = []
    offset = 0
    for name, data in arrays.items():
        packed = zlib.compress(np.ascontiguousarray(data).tobytes(), _LEVEL)
        sections[name] = {
            "offset": offset,
            "length": len(packed),
            "dtype": str(data.dtype),
            "count": data.size,
        }
        parts.append(packed)
        offset += len(packed)
    return sections, b"".join(parts)


def _script(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    meta["sections"], blob = _pack(arrays)
    body = json.dumps(meta, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return f'{LAYER_CALLBACK}({body},"'.encode("ascii") + encode_bytes_literal(blob) + b'");\n'


def _table(rows: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(rows), dtype=np.uint8)


def shared_file_text(shared: SharedImages) -> bytes:
    """The bytes of a shared images file: ``UNITLENS_LAYER({key, width, table_rows, sections}, "bytes");``
    with one section, ``table`` (uint8, one row per distinct image)."""
    rows = shared.table.rows
    meta: dict[str, Any] = {"key": shared.key, "width": len(rows[0]) if rows else 0, "table_rows": len(rows)}
    return _script(meta, {"table": _table(rows)} if rows else {})


@dataclass(frozen=True)
class LayerFiles:
    """A layer's files: its index (numbers and thumbnails) and its chunks of images, with their keys."""

    index: bytes
    chunks: list[tuple[str, bytes]]
    entry: dict[str, Any]


def layer_files(
    results: StackResults,
    j: int,
    key: str,
    shared: SharedImages | None = None,
    chunk_units: int = CHUNK_UNITS,
) -> LayerFiles:
    """Layer ``j``'s index file and its chunks' files.

    Args:
        results: the stack's validated results.
        j: the layer.
        key: the index file's name in the report (``"s0-l1"``); chunk ``c`` is ``"{key}-c{c}"``. Each file
            announces its key, so the browser can match a loaded file to the request that added it.
        shared: where the layer's exemplars go (their rows then index this table, and the kind's entry
            names it as ``"shared"``); None keeps them in the chunks' own tables.
        chunk_units: units per chunk.

    Returns:
        The files and the report index's entry for the layer (``layer``, ``name``, ``n_units``,
        ``n_restarts``, ``key``, ``bytes``: the index file's and every chunk's together).
    """
    a: LayerResults = results.layers[j]
    shape, d, n = results.image_shape, results.n_inputs, a.n_units
    kinds: dict[str, dict[str, Any]] = {}
    levels: dict[str, np.ndarray] = {}
    ranges: dict[str, np.ndarray] = {}
    for kind in IMAGE_KEYS:
        arr = getattr(a, kind)
        per_unit = 0 if arr is None else 1 if arr.ndim == 2 else int(arr.shape[1])
        if per_unit == 0 or n == 0:
            continue
        flat = arr.reshape(-1, d)
        signed = bool((flat < 0).any())  # one rule for the whole layer's images of a kind
        levels[kind] = quantise_images(flat, shape, signed)
        ranges[kind] = image_ranges(flat, signed)
        r = ranges[kind]
        lo, hi = float(r[:, 0].min()), float(r[:, 1].max())
        if signed:
            lo, hi = -max(-lo, hi), max(-lo, hi)
        kinds[kind] = {"per_unit": per_unit, "signed": signed, "layer_range": _floats(np.array([lo, hi]), 6)}
        if kind == "exemplars" and shared is not None:
            kinds[kind]["shared"] = shared.key
    width = next(iter(levels.values())).shape[1] if levels else 0

    # The thumbnails: layer 1's filters, else each unit's best AM restart.
    thumb_kind = "filters" if "filters" in levels else "am_x"
    best = np.zeros(n, dtype=np.int64) if a.am_best is None else a.am_best.astype(np.int64)
    pick = (
        np.arange(n) * kinds[thumb_kind]["per_unit"] + (best if thumb_kind == "am_x" else 0)
        if levels
        else None
    )
    meta: dict[str, Any] = {
        "key": key,
        "layer": j,
        "name": results.layer_name(j),
        "n_units": n,
        "n_restarts": a.n_restarts,
        "width": width,
        "kinds": kinds,
        "thumb_kind": thumb_kind if levels else None,
        "numbers": _numbers(a),
    }
    summary = results.layer_summary(j) or {}
    # The study's thresholds (its summary); without a summary the browser flags nothing.
    meta["degenerate_threshold"] = nested_get(summary, "degenerate", "threshold")
    meta["restart_threshold"] = nested_get(summary, "restarts", "threshold")
    arrays: dict[str, np.ndarray] = {}
    if pick is not None:
        arrays["thumbs"] = levels[thumb_kind][pick]
        arrays["thumb_ranges"] = ranges[thumb_kind][pick].astype("<f4")
    if (sel := _selectivity(a)) is not None:
        meta["selectivity"], arrays["selectivity"] = sel

    # The layer's thumbnails are rows 0 .. n - 1 of every chunk's numbering: each chunk's table starts
    # knowing them (the first of equal thumbnails), so an equal image refers to one instead of repeating it.
    thumb_rows: dict[tuple[int, bytes], int] = {}
    if pick is not None:
        for u, thumb in enumerate(arrays["thumbs"]):
            thumb_rows.setdefault((-1, thumb.tobytes()), u)
    chunks: list[tuple[str, bytes]] = []
    chunk_list = []
    for c, start in enumerate(range(0, n, chunk_units) if levels else ()):
        stop = min(n, start + chunk_units)
        table = _Images(n, [], [], dict(thumb_rows))
        images: dict[str, Any] = {}
        row_lists, range_lists, first = [], [], 0
        for kind, info in kinds.items():
            k = info["per_unit"]
            q = levels[kind][start * k : stop * k]
            if "shared" in info and shared is not None:
                rows = [shared.table.add(x) for x in q]  # training rows: no differences between them
            else:
                lead = best[start:stop] if kind == "am_x" else np.zeros(stop - start, dtype=np.int64)
                rows = _add_kind(table, q, k, lead)
            images[kind] = {"first": first, "count": len(rows)}
            row_lists.append(rows)
            range_lists.append(ranges[kind][start * k : stop * k])
            first += len(rows)
        chunk_key = f"{key}-c{c}"
        chunk_meta: dict[str, Any] = {
            "key": chunk_key,
            "first_unit": start,
            "n_units": stop - start,
            "table_offset": n,
            "table_rows": len(table.rows),
            "images": images,
        }
        chunk_arrays: dict[str, np.ndarray] = {}
        if table.rows:
            chunk_arrays["table"] = _table(table.rows)
        chunk_arrays["rows"] = np.asarray([r for rows in row_lists for r in rows], dtype="<u4")
        chunk_arrays["bases"] = np.asarray(table.bases, dtype="<i4")
        chunk_arrays["ranges"] = np.concatenate(range_lists).astype("<f4")
        text = _script(chunk_meta, chunk_arrays)
        chunks.append((chunk_key, text))
        chunk_list.append(
            {"key": chunk_key, "first_unit": start, "n_units": stop - start, "bytes": len(text)}
        )
    meta["chunks"] = chunk_list
    index = _script(meta, arrays)
    entry = {
        "layer": j,
        "name": results.layer_name(j),
        "n_units": n,
        "n_restarts": a.n_restarts,
        "key": key,
        "bytes": len(index) + sum(len(t) for _, t in chunks),
    }
    return LayerFiles(index, chunks, entry)


# ---------------------------------------------------------------------------------------------------------
# Reading a layer's files back (what explorer.js does), for tests and tools


@dataclass(frozen=True)
class LayerFile:
    """A decoded layer: its index's JSON; per image kind, ``levels`` ``(n, width)`` uint8 and ``ranges``
    ``(n, 2)`` over every unit; the thumbnails ``(units, width)``; ``bases`` (every chunk's, concatenated:
    per distinct image -1, or the row it is a difference from), the ``selectivity`` levels ``(n, n)``
    (None without a matrix) and each chunk's JSON."""

    meta: dict[str, Any]
    levels: dict[str, np.ndarray]
    ranges: dict[str, np.ndarray]
    thumbs: np.ndarray | None
    bases: np.ndarray | None
    selectivity: np.ndarray | None
    chunks: list[dict[str, Any]]


def _section(blob: bytes, meta: dict[str, Any], name: str) -> np.ndarray:
    s = meta["sections"][name]
    raw = zlib.decompress(blob[s["offset"] : s["offset"] + s["length"]])
    return np.frombuffer(raw, dtype=np.dtype(s["dtype"]).newbyteorder("<"))


def _parse(text: bytes) -> tuple[dict[str, Any], bytes]:
    """A data file's JSON and its bytes (the string literal's body, unescaped)."""
    prefix = f"{LAYER_CALLBACK}(".encode("ascii")
    if not text.startswith(prefix) or not text.endswith(b'");\n'):
        raise UnitlensError(f'not a report data file: expected {LAYER_CALLBACK}(JSON, "bytes");')
    # The JSON's strings may hold ',"' too: its own decoder says where it ends.
    meta, end = json.JSONDecoder().raw_decode(text[len(prefix) :].decode("latin-1"))
    split = len(prefix) + end
    if text[split : split + 2] != b',"':
        raise UnitlensError("not a report data file: expected the bytes after the JSON")
    return meta, decode_bytes_literal(text[split + 2 : -4])


def read_shared_file(text: bytes) -> np.ndarray:
    """A shared images file's table, ``(rows, width)`` uint8 (``shared_file_text``)."""
    meta, blob = _parse(text)
    if not meta["table_rows"]:
        return np.zeros((0, meta["width"]), dtype=np.uint8)
    return _section(blob, meta, "table").reshape(meta["table_rows"], meta["width"])


def read_layer(
    index: bytes, chunks: dict[str, bytes], shared: dict[str, np.ndarray] | None = None
) -> LayerFile:
    """Decode a layer's index file and its chunks as the browser does (see the module docstring).

    Args:
        index: the index file's bytes.
        chunks: every chunk file's bytes, by key.
        shared: the shared tables the chunks name (``read_shared_file``), by key.

    Raises:
        UnitlensError: a file is not a report data file, or a chunk or shared table it names is not given.
    """
    meta, blob = _parse(index)
    width = meta["width"]
    thumbs = _section(blob, meta, "thumbs").reshape(-1, width) if "thumbs" in meta["sections"] else None
    parts: dict[str, list[np.ndarray]] = {kind: [] for kind in meta["kinds"]}
    part_ranges: dict[str, list[np.ndarray]] = {kind: [] for kind in meta["kinds"]}
    all_bases = []
    chunk_metas = []
    for c in meta["chunks"]:
        if c["key"] not in chunks:
            raise UnitlensError(f"layer {meta['key']}: its chunk {c['key']}.js is missing")
        cmeta, cblob = _parse(chunks[c["key"]])
        chunk_metas.append(cmeta)
        own = np.zeros((0, width), dtype=np.uint8)
        if "table" in cmeta["sections"]:
            own = _section(cblob, cmeta, "table").reshape(-1, width)
        assert thumbs is not None
        table = np.concatenate([thumbs, own])  # the chunk's rows continue the thumbnails' numbering
        bases = _section(cblob, cmeta, "bases")
        offset = cmeta["table_offset"]
        for i in np.flatnonzero(bases >= 0):  # bases precede the rows that refer to them
            r = offset + i
            table[r] = (table[r].astype(np.int16) + table[bases[i]]).astype(np.uint8)
        all_bases.append(bases)
        rows = _section(cblob, cmeta, "rows")
        rngs = _section(cblob, cmeta, "ranges").reshape(-1, 2)
        for kind, info in meta["kinds"].items():
            source = table
            if "shared" in info:
                if shared is None or info["shared"] not in shared:
                    raise UnitlensError(f"layer {meta['key']}: its {kind} are in {info['shared']}.js")
                source = shared[info["shared"]]
            place = cmeta["images"][kind]
            sl = slice(place["first"], place["first"] + place["count"])
            parts[kind].append(source[rows[sl]])
            part_ranges[kind].append(rngs[sl])
    levels = {k: np.concatenate(v) for k, v in parts.items() if v}
    ranges = {k: np.concatenate(v) for k, v in part_ranges.items() if v}
    selectivity = None
    if "selectivity" in meta:
        n = meta["selectivity"]["n"]
        selectivity = _section(blob, meta, "selectivity").reshape(n, n)
    bases_all = np.concatenate(all_bases) if all_bases else None
    return LayerFile(meta, levels, ranges, thumbs, bases_all, selectivity, chunk_metas)
