"""The IDX file format of the MNIST distribution: read and write, raw or gzip-compressed.

An IDX file is a header followed by the array's items, all big-endian::

    byte 0-1   0x00 0x00
    byte 2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte 3     number of dimensions D (1 or more)
    then       D sizes, each a big-endian int32
    then       prod(sizes) items in C order, big-endian

The reader checks every part of that layout, so a damaged or foreign file gives a ``UnitlensError``
naming the file and the problem rather than a wrong array or a numpy traceback.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from unitlens.atomic import write_bytes
from unitlens.errors import UnitlensError

__all__ = ["IDX_DTYPES", "decode_idx", "encode_idx", "read_idx", "write_idx"]

#: Type code -> big-endian numpy dtype of the items.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# numpy caps the number of dimensions (32 in numpy 1.x, 64 in 2.x); the lower cap works for both.
MAX_DIMS = 32
_GZIP_MAGIC = b"\x1f\x8b"
# Errors the gzip module raises on a damaged stream: BadGzipFile (an OSError) for a bad header or CRC,
# EOFError for a stream cut short, zlib.error for corrupt deflate data.
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


def _type_code(dtype: np.dtype) -> int | None:
    """The IDX type code of ``dtype`` (any byte order), or None if IDX cannot store it."""
    for code, idx_dtype in IDX_DTYPES.items():
        if dtype.kind == idx_dtype.kind and dtype.itemsize == idx_dtype.itemsize:
            return code
    return None


def _supported() -> str:
    return ", ".join(f"{dt.newbyteorder('=').name} (0x{code:02X})" for code, dt in IDX_DTYPES.items())


def decode_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file (raw, or gzip-compressed detected by its magic bytes 1f 8b).

    Args:
        data: the file's contents.
        name: what to call the data in error messages (the file's path).

    Returns:
        A new, writable, native-endian array with the dtype and shape the header declares.
    """
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except _GZIP_ERRORS as e:
            raise UnitlensError(f"{name}: damaged gzip stream ({e or type(e).__name__})") from e
        where = "after gzip decompression, "
    else:
        where = ""
    if len(data) < 4:
        raise UnitlensError(
            f"{name}: {where}only {len(data)} bytes; an IDX file starts with a 4-byte magic number"
        )
    if data[0] != 0 or data[1] != 0:
        raise UnitlensError(
            f"{name}: {where}not an IDX file: its first two bytes are {data[:2].hex(' ')}, expected 00 00 "
            "(or 1f 8b for a gzip-compressed IDX file)"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise UnitlensError(
            f"{name}: {where}unknown IDX type code 0x{code:02X} in byte 2; expected one of {_supported()}"
        )
    if not 1 <= ndim <= MAX_DIMS:
        raise UnitlensError(
            f"{name}: {where}IDX header declares {ndim} dimensions (byte 3); expected 1 to {MAX_DIMS}"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise UnitlensError(
            f"{name}: {where}truncated header: {ndim} dimensions need {header_len} header bytes, "
            f"the file has {len(data)}"
        )
    # Sizes are signed int32 in the format; a negative one can only come from damage.
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    if any(s < 0 for s in shape):
        raise UnitlensError(f"{name}: {where}IDX header declares a negative dimension size: {shape}")
    dtype = IDX_DTYPES[code]
    # Python integers: a damaged header can declare more items than fit in any machine integer.
    expected = math.prod(shape) * dtype.itemsize
    got = len(data) - header_len
    if got < expected:
        raise UnitlensError(
            f"{name}: {where}truncated: shape {shape} of {dtype.newbyteorder('=').name} needs {expected} "
            f"data bytes after the {header_len}-byte header, the file has {got}"
        )
    if got > expected:
        raise UnitlensError(
            f"{name}: {where}{got - expected} trailing bytes after the data: shape {shape} of "
            f"{dtype.newbyteorder('=').name} needs exactly {expected} data bytes, the file has {got}"
        )
    items = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    # astype copies, so the result is writable and owns its memory (frombuffer's view is read-only).
    return items.astype(dtype.newbyteorder("="))


def encode_idx(array: np.ndarray, *, compress: bool = False, name: str = "<array>") -> bytes:
    """The bytes of an IDX file holding ``array``, gzip-compressed when ``compress``.

    Args:
        array: any shape with 1 to ``MAX_DIMS`` dimensions, each below 2**31; dtype uint8, int8, int16,
            int32, float32 or float64 in either byte order.
        compress: gzip the result (with a zero timestamp, so equal arrays give equal bytes).
        name: what to call the destination in error messages.
    """
    if not isinstance(array, np.ndarray):
        raise UnitlensError(f"{name}: IDX stores numpy arrays, got {type(array).__name__}")
    code = _type_code(array.dtype)
    if code is None:
        raise UnitlensError(f"{name}: IDX cannot store dtype {array.dtype}; supported: {_supported()}")
    if not 1 <= array.ndim <= MAX_DIMS:
        raise UnitlensError(f"{name}: IDX stores arrays of 1 to {MAX_DIMS} dimensions, got {array.ndim}")
    if any(s >= 2**31 for s in array.shape):
        raise UnitlensError(f"{name}: IDX dimension sizes are int32, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    body = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    data = header + body
    return gzip.compress(data, mtime=0) if compress else data


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (recognised by its first bytes, not by its name).

    Returns:
        A native-endian array with the dtype and shape the file declares.

    Raises:
        UnitlensError: the file is missing or unreadable, its gzip stream is damaged, or its header or
            length does not match the IDX format.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise UnitlensError(f"{p}: cannot read IDX file ({e.strerror or e})") from e
    return decode_idx(data, str(p))


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` to ``path`` as an IDX file, atomically.

    Args:
        path: destination; its folder is created if needed.
        array: see ``encode_idx`` for what IDX can store.
        compress: gzip the file; None (the default) compresses exactly when the name ends with ``.gz``.
    """
    p = Path(path)
    if compress is None:
        compress = p.name.endswith(".gz")
    write_bytes(p, encode_idx(array, compress=compress, name=str(p)))
