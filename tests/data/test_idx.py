"""Tests of the IDX reader and writer (aae_fast.data.idx)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from aae_fast.data import (
    IDX_DTYPES,
    IDXFormatError,
    parse_idx,
    read_idx,
    read_idx_tensor,
    write_idx,
)

# (type code, native dtype) for every IDX type code
CODES = [
    (0x08, np.uint8),
    (0x09, np.int8),
    (0x0B, np.int16),
    (0x0C, np.int32),
    (0x0D, np.float32),
    (0x0E, np.float64),
]
SHAPES = [(7,), (3, 5), (2, 3, 5), (1, 4, 1, 3), (0, 3)]


def _random_array(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    """An independent encoder: the header by hand, the payload via numpy's '>' dtypes."""
    header = bytes((0, 0, code, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.dtype(array.dtype).newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("code, dtype", CODES, ids=[f"0x{c:02X}" for c, _ in CODES])
def test_round_trip(
    tmp_path: Path, code: int, dtype: type, shape: tuple[int, ...], compressed: bool
):
    array = _random_array(shape, dtype)
    path = write_idx(tmp_path / ("a.idx.gz" if compressed else "a.idx"), array)

    on_disk = path.read_bytes()
    assert (on_disk[:2] == b"\x1f\x8b") == compressed
    raw = gzip.decompress(on_disk) if compressed else on_disk
    assert raw == _idx_bytes(array, code)  # the writer follows the format, byte for byte

    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == shape
    assert out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, array)

    tensor = read_idx_tensor(path)
    assert tensor.shape == shape
    np.testing.assert_array_equal(tensor.numpy(), array)


@pytest.mark.parametrize("code, dtype", CODES, ids=[f"0x{c:02X}" for c, _ in CODES])
def test_parse_independent_encoding(code: int, dtype: type):
    array = _random_array((3, 4, 5), dtype, seed=1)
    data = _idx_bytes(array, code)
    np.testing.assert_array_equal(parse_idx(data), array)
    np.testing.assert_array_equal(parse_idx(gzip.compress(data)), array)


def test_compression_follows_content_not_name(tmp_path: Path):
    array = _random_array((4, 6), np.int16)
    gz_named_raw = write_idx(tmp_path / "x.gz", array, compress=False)
    raw_named_gz = write_idx(tmp_path / "y", array, compress=True)
    np.testing.assert_array_equal(read_idx(gz_named_raw), array)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)


def test_writer_is_deterministic_and_takes_tensors(tmp_path: Path):
    tensor = torch.arange(30, dtype=torch.int32).reshape(5, 6)
    a = write_idx(tmp_path / "a.gz", tensor)
    b = write_idx(tmp_path / "a2.gz", tensor.numpy())
    assert gzip.decompress(a.read_bytes()) == gzip.decompress(b.read_bytes())
    assert torch.equal(read_idx_tensor(a), tensor)


def test_ubyte_is_zero_copy_view_of_one_buffer(tmp_path: Path):
    path = write_idx(tmp_path / "u8", np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    out = read_idx(path)
    assert out.base is not None and out.base.nbytes == 24  # views the read buffer
    tensor = read_idx_tensor(path)
    assert tensor.untyped_storage().nbytes() == 24


@pytest.mark.parametrize("dtype", [np.uint16, np.int64, np.complex64, np.bool_])
def test_writer_rejects_unsupported_dtypes(tmp_path: Path, dtype: type):
    with pytest.raises(ValueError, match="IDX cannot store dtype"):
        write_idx(tmp_path / "bad", np.zeros(3, dtype=dtype))


def test_writer_rejects_scalars(tmp_path: Path):
    with pytest.raises(ValueError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "bad", np.zeros((), dtype=np.uint8))


# --- corrupt files -------------------------------------------------------------------------------

GOOD = _idx_bytes(np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4), 0x0B)  # 48-byte payload


# (id, file content, pattern the message must match)
CASES: list[tuple[str, bytes, str]] = [
    ("bad magic", b"\x01\x02" + GOOD[2:], r"bad magic number.*expected two zero bytes.*0x0102"),
    ("wrong dtype code", GOOD[:2] + b"\x0a" + GOOD[3:], r"type code 0x0A: expected one of 0x08"),
    ("zero dims", b"\x00\x00\x08\x00", r"dimension count is 0"),
    ("short magic", b"\x00\x00", r"expected a 4-byte magic number, received only 2"),
    ("empty file", b"", r"expected a 4-byte magic number, received only 0"),
    ("truncated dims", GOOD[:10], r"truncated header: expected 12 bytes .* 3 dim.*received 6"),
    (
        "truncated payload",
        GOOD[:-3],
        r"truncated payload: dims \(2, 3, 4\) of short .*need 48 payload bytes, received 45",
    ),
    (
        "trailing bytes",
        GOOD + b"\x00" * 5,
        r"trailing data after payload: .*need 48 payload bytes, received 53",
    ),
    ("empty payload", GOOD[:16], r"truncated payload: .*need 48 payload bytes, received 0"),
]


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("data, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_corrupt_file_raises_naming_file(
    tmp_path: Path, data: bytes, pattern: str, compressed: bool
):
    path = tmp_path / ("broken-file.gz" if compressed else "broken-file")
    path.write_bytes(gzip.compress(data) if compressed else data)
    with pytest.raises(IDXFormatError, match=pattern) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert info.value.source == str(path)
    assert isinstance(info.value, ValueError)


def test_parse_names_source():
    with pytest.raises(IDXFormatError, match=r"^my-buffer: not a valid IDX file: bad magic"):
        parse_idx(b"\xff" * 8, source="my-buffer")


@pytest.mark.parametrize("cut", [5, 30], ids=["in-header", "in-payload"])
def test_truncated_gzip_stream(tmp_path: Path, cut: int):
    compressed = gzip.compress(GOOD)
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[:cut])
    pattern = "cut.gz: not a valid IDX file: corrupt or truncated gzip"
    with pytest.raises(IDXFormatError, match=pattern):
        read_idx(path)


def test_corrupt_gzip_crc(tmp_path: Path):
    compressed = bytearray(gzip.compress(GOOD))
    compressed[-8] ^= 0xFF  # CRC32 of the uncompressed data
    path = tmp_path / "crc.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(IDXFormatError, match="crc.gz.*gzip"):
        read_idx(path)


def test_absurd_header_fails_before_allocating(tmp_path: Path):
    # 0xFFFFFFFF^3 doubles: a raw file is checked against its size, a gz one fails to allocate.
    data = b"\x00\x00\x0e\x03" + b"\xff" * 12 + b"\x00" * 8
    raw = tmp_path / "huge"
    raw.write_bytes(data)
    with pytest.raises(IDXFormatError, match="truncated payload"):
        read_idx(raw)
    gz = tmp_path / "huge.gz"
    gz.write_bytes(gzip.compress(data))
    with pytest.raises(IDXFormatError, match="huge.gz.*cannot be allocated"):
        read_idx(gz)


def test_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "absent")


def test_error_pickles():
    error = IDXFormatError("f", "bad")
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) == "f: not a valid IDX file: bad"


def test_dtype_table():
    assert sorted(IDX_DTYPES) == [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]
    assert all(d.byteorder in ">|" for d in IDX_DTYPES.values())
