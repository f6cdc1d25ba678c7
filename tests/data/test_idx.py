"""IDX reader and writer: the byte layout against hand-built headers, round trips, damaged files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unitlens.data.idx import IDX_DTYPES, decode_idx, encode_idx, read_idx, write_idx
from unitlens.errors import UnitlensError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NATIVE_DTYPES = [dt.newbyteorder("=") for dt in IDX_DTYPES.values()]


def header(code: int, *dims: int) -> bytes:
    """An IDX header built by hand from the format's description (not by the code under test)."""
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">i", d) for d in dims)


# ------------------------------------------------------------------------------------ byte layout


def test_uint8_header_and_data_bytes(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    expected = b"\x00\x00\x08\x02" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03" + bytes(range(6))
    write_idx(tmp_path / "a-idx2-ubyte", a)
    assert (tmp_path / "a-idx2-ubyte").read_bytes() == expected
    assert encode_idx(a) == expected


@pytest.mark.parametrize(
    ("array", "data"),
    [
        (np.array([1, -2], dtype=np.int8), header(0x09, 2) + b"\x01\xfe"),
        (np.array([1, -2], dtype=np.int16), header(0x0B, 2) + b"\x00\x01\xff\xfe"),
        (np.array([258, -1], dtype=np.int32), header(0x0C, 2) + b"\x00\x00\x01\x02\xff\xff\xff\xff"),
        (np.array([1.0, -2.0], dtype=np.float32), header(0x0D, 2) + b"\x3f\x80\x00\x00\xc0\x00\x00\x00"),
        (np.array([1.0], dtype=np.float64), header(0x0E, 1) + b"\x3f\xf0" + bytes(6)),
        (np.array([[[7]]], dtype=np.uint8), header(0x08, 1, 1, 1) + b"\x07"),
    ],
)
def test_each_type_code_matches_hand_built_bytes(tmp_path: Path, array: np.ndarray, data: bytes) -> None:
    assert encode_idx(array) == data
    f = tmp_path / "x.idx"
    f.write_bytes(data)
    got = read_idx(f)
    assert got.dtype == array.dtype
    assert got.shape == array.shape
    np.testing.assert_array_equal(got, array)


def test_big_endian_input_is_written_the_same_as_native() -> None:
    a = np.array([1, 2, 3], dtype=np.int32)
    assert (
        encode_idx(a.astype(">i4"))
        == encode_idx(a.astype("<i4"))
        == header(0x0C, 3) + bytes([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
    )


def test_result_is_native_endian_writable_and_owns_memory(tmp_path: Path) -> None:
    for dt in NATIVE_DTYPES:
        f = tmp_path / "x"
        write_idx(f, np.zeros((2, 2), dtype=dt))
        got = read_idx(f)
        assert got.dtype == dt
        assert got.dtype.isnative
        assert got.flags.writeable
        assert got.flags.owndata


def test_zero_sized_dimension_round_trips(tmp_path: Path) -> None:
    write_idx(tmp_path / "e", np.zeros((0, 28, 28), dtype=np.uint8))
    assert (tmp_path / "e").read_bytes() == header(0x08, 0, 28, 28)
    assert read_idx(tmp_path / "e").shape == (0, 28, 28)


# ------------------------------------------------------------------------------------------ gzip


def test_gzip_chosen_by_name_and_detected_by_magic(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.int16).reshape(3, 4)
    write_idx(tmp_path / "a.gz", a)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == encode_idx(a)
    # compress overrides the name either way; reading looks at the bytes, not the name.
    write_idx(tmp_path / "raw.gz", a, compress=False)
    write_idx(tmp_path / "packed", a, compress=True)
    assert (tmp_path / "raw.gz").read_bytes() == encode_idx(a)
    assert (tmp_path / "packed").read_bytes()[:2] == b"\x1f\x8b"
    for name in ("a.gz", "raw.gz", "packed"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), a)


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    a = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "1.gz", a)
    write_idx(tmp_path / "2.gz", a)
    assert (tmp_path / "1.gz").read_bytes() == (tmp_path / "2.gz").read_bytes()


def test_hand_gzipped_file_reads(tmp_path: Path) -> None:
    data = header(0x08, 2, 2) + bytes([1, 2, 3, 4])
    (tmp_path / "x").write_bytes(gzip.compress(data))
    np.testing.assert_array_equal(read_idx(tmp_path / "x"), [[1, 2], [3, 4]])


# ---------------------------------------------------------------------------------------- errors


def _expect_error(path: Path, data: bytes, *fragments: str) -> None:
    path.write_bytes(data)
    with pytest.raises(UnitlensError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


GOOD = header(0x08, 2, 3) + bytes(range(6))


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (b"", ("only 0 bytes",)),
        (b"\x00\x00\x08", ("only 3 bytes",)),
        (b"\x01\x00" + GOOD[2:], ("not an IDX file", "01 00")),
        (b"PK\x03\x04" + GOOD[4:], ("not an IDX file",)),
        (header(0x0A, 6) + bytes(6), ("type code 0x0A",)),
        (header(0x08) + bytes(6), ("0 dimensions",)),
        (bytes([0, 0, 8, 200]) + bytes(8), ("200 dimensions",)),
        (GOOD[:10], ("truncated header",)),
        (GOOD[:-1], ("truncated", "needs 6 data bytes", "has 5")),
        (GOOD + b"\x00\x00", ("2 trailing bytes",)),
        (header(0x08, -1, 3), ("negative dimension",)),
        (header(0x0E, 2, 3) + bytes(6), ("truncated", "needs 48")),
    ],
    ids=[
        "empty",
        "short-magic",
        "bad-magic",
        "zip-magic",
        "unknown-type",
        "zero-dims",
        "too-many-dims",
        "truncated-header",
        "truncated-data",
        "trailing-bytes",
        "negative-size",
        "float64-short",
    ],
)
def test_malformed_raw_files(tmp_path: Path, data: bytes, fragments: tuple[str, ...]) -> None:
    _expect_error(tmp_path / "bad-idx", data, *fragments)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    packed = gzip.compress(GOOD)
    _expect_error(tmp_path / "cut.gz", packed[:-6], "gzip")


def test_bad_gzip_crc(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(GOOD))
    packed[-8] ^= 0xFF  # first byte of the CRC32 in the trailer
    _expect_error(tmp_path / "crc.gz", bytes(packed), "gzip")


def test_valid_gzip_of_a_bad_idx_names_both(tmp_path: Path) -> None:
    _expect_error(tmp_path / "short.gz", gzip.compress(GOOD[:-2]), "after gzip decompression", "truncated")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    for p in (tmp_path / "nope", tmp_path):
        with pytest.raises(UnitlensError, match="cannot read IDX file") as info:
            read_idx(p)
        assert str(p) in str(info.value)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros(3, dtype=np.int64),
        np.zeros(3, dtype=np.uint16),
        np.zeros(3, dtype=bool),
        np.zeros(3, dtype=np.float16),
        np.zeros(3, dtype=np.complex64),
        np.array([None, 1], dtype=object),
        np.array(5, dtype=np.uint8),
    ],
)
def test_write_rejects_what_idx_cannot_hold(tmp_path: Path, array: np.ndarray) -> None:
    target = tmp_path / "out-idx"
    with pytest.raises(UnitlensError) as info:
        write_idx(target, array)
    assert str(target) in str(info.value)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_non_arrays(tmp_path: Path) -> None:
    with pytest.raises(UnitlensError, match="numpy arrays"):
        write_idx(tmp_path / "x", [1, 2, 3])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- property tests


@st.composite
def idx_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(NATIVE_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    return draw(hnp.arrays(dtype, shape))


@FUZZ
@given(array=idx_arrays(), compress=st.booleans(), big_endian=st.booleans())
def test_round_trip(tmp_path: Path, array: np.ndarray, compress: bool, big_endian: bool) -> None:
    f = tmp_path / ("x.gz" if compress else "x")
    write_idx(f, array.astype(array.dtype.newbyteorder(">")) if big_endian else array)
    got = read_idx(f)
    assert got.dtype == array.dtype
    assert got.shape == array.shape
    # Compare bytes: equal for NaN payloads and -0.0 too, where == would not be.
    assert got.tobytes() == array.tobytes()


@FUZZ
@given(
    array=idx_arrays(),
    compress=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
    extra=st.binary(max_size=4),
)
def test_damaged_files_raise_only_unitlens_errors(
    tmp_path: Path,
    array: np.ndarray,
    compress: bool,
    edits: list[tuple[int, int]],
    cut: int | None,
    extra: bytes,
) -> None:
    data = bytearray(encode_idx(array, compress=compress))
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    data += extra
    f = tmp_path / "damaged"
    f.write_bytes(bytes(data))
    error: UnitlensError | None = None
    try:
        got = read_idx(f)
    except UnitlensError as e:
        error = e
    if error is not None:
        assert str(f) in str(error)
    else:
        # Accepted bytes must be a self-consistent IDX file that re-encodes to itself.
        raw = gzip.decompress(bytes(data)) if data[:2] == b"\x1f\x8b" else bytes(data)
        assert encode_idx(got) == raw


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_unitlens_errors(data: bytes) -> None:
    error: UnitlensError | None = None
    try:
        got = decode_idx(data, "blob")
    except UnitlensError as e:
        error = e
    if error is not None:
        assert str(error).startswith("blob: ")
    else:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        assert encode_idx(got) == raw
