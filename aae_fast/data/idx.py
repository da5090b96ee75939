"""Reading and writing IDX files, the container format of MNIST and Fashion-MNIST.

An IDX file is a tiny header followed by one row-major (C-order) array; every
integer, in the header and in the payload, is big-endian::

    offset 0      2 bytes        0x00 0x00
    offset 2      1 byte         type code: 0x08 ubyte, 0x09 sbyte, 0x0B int16,
                                 0x0C int32, 0x0D float32, 0x0E float64
    offset 3      1 byte         number of dimensions d (at least 1)
    offset 4      4 * d bytes    the size of each dimension (uint32)
    offset 4+4d   prod(dims) * itemsize bytes of data

Files may be stored raw or gzip-compressed; the reader tells them apart by the
gzip magic (``1f 8b``), not by the file name. A file whose header or payload
does not match the description above raises :class:`IDXFormatError`, a
``ValueError`` naming the file and what was expected versus what was found.

The payload is read straight into one writable buffer which the returned array
views (no extra copy); multi-byte types are byte-swapped in place on
little-endian hosts, so the result always has native byte order and converts to
a ``torch.Tensor`` with :func:`torch.from_numpy` without copying.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import struct
import sys
import zlib
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, Mapping

import numpy as np
import torch

__all__ = [
    "IDX_DTYPES",
    "IDXFormatError",
    "parse_idx",
    "read_idx",
    "read_idx_tensor",
    "write_idx",
]

PathLike = str | os.PathLike[str]

#: IDX type code -> big-endian numpy dtype of the payload.
IDX_DTYPES: Mapping[int, np.dtype] = MappingProxyType(
    {
        0x08: np.dtype(">u1"),
        0x09: np.dtype(">i1"),
        0x0B: np.dtype(">i2"),
        0x0C: np.dtype(">i4"),
        0x0D: np.dtype(">f4"),
        0x0E: np.dtype(">f8"),
    }
)

_TYPE_NAMES = {
    0x08: "ubyte",
    0x09: "sbyte",
    0x0B: "short",
    0x0C: "int",
    0x0D: "float",
    0x0E: "double",
}
_EXPECTED_CODES = ", ".join(f"0x{code:02X} ({name})" for code, name in _TYPE_NAMES.items())
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 22  # bytes per read call: bounds the temporary buffers of gzip streams


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file.

    Attributes:
        source: the file (or a description of the buffer) that was read.
        problem: what was wrong, with the expected and the received values.
    """

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(source, problem)
        self.source = source
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.source}: not a valid IDX file: {self.problem}"


def _read_upto(stream: BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes, or fewer only at end of stream."""
    parts: list[bytes] = []
    remaining = n
    while remaining > 0:
        part = stream.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _readinto_full(stream: BinaryIO, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream`` in bounded chunks; return the number of bytes read."""
    pos = 0
    total = len(buffer)
    while pos < total:
        count = stream.readinto(buffer[pos : min(pos + _CHUNK, total)])
        if not count:
            break
        pos += count
    return pos


def _count_remaining(stream: BinaryIO) -> int:
    count = 0
    while chunk := stream.read(_CHUNK):
        count += len(chunk)
    return count


def _describe(dims: tuple[int, ...], code: int) -> str:
    itemsize = IDX_DTYPES[code].itemsize
    return f"dims {dims} of {_TYPE_NAMES[code]} (0x{code:02X}, {itemsize} byte(s) each)"


def _read_stream(stream: BinaryIO, source: str, payload_size: int | None) -> np.ndarray:
    """Parse one IDX array from an uncompressed byte stream positioned at its start.

    Args:
        stream: binary stream holding the header and the payload.
        source: what to name in error messages.
        payload_size: the number of bytes after the 4-byte magic, if known up
            front (raw files); lets a bad size fail before any allocation.
    """
    magic = _read_upto(stream, 4)
    if len(magic) < 4:
        raise IDXFormatError(
            source, f"expected a 4-byte magic number, received only {len(magic)} byte(s)"
        )
    if magic[0] != 0 or magic[1] != 0:
        raise IDXFormatError(
            source,
            f"bad magic number 0x{magic.hex()}: expected two zero bytes, a type code and a "
            f"dimension count (0x0000TTDD), received leading bytes 0x{magic[:2].hex()}",
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise IDXFormatError(
            source, f"unknown data type code 0x{code:02X}: expected one of {_EXPECTED_CODES}"
        )
    if ndim == 0:
        raise IDXFormatError(source, "dimension count is 0: expected at least 1 dimension")
    dims_bytes = _read_upto(stream, 4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise IDXFormatError(
            source,
            f"truncated header: expected {4 * ndim} bytes of sizes for {ndim} dimension(s), "
            f"received {len(dims_bytes)}",
        )
    dims = struct.unpack(f">{ndim}I", dims_bytes)
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize

    if payload_size is not None:
        received = payload_size - 4 * ndim
        if received != expected:
            kind = "truncated payload" if received < expected else "trailing data after payload"
            raise IDXFormatError(
                source,
                f"{kind}: {_describe(dims, code)} need {expected} payload bytes, "
                f"received {received}",
            )

    try:
        buffer = np.empty(expected, dtype=np.uint8)
    except (MemoryError, ValueError) as exc:
        raise IDXFormatError(
            source,
            f"header declares {_describe(dims, code)} = {expected} payload bytes, "
            f"which cannot be allocated ({exc}); the header is probably corrupt",
        ) from exc
    received = _readinto_full(stream, memoryview(buffer))
    if received < expected:
        raise IDXFormatError(
            source,
            f"truncated payload: {_describe(dims, code)} need {expected} payload bytes, "
            f"received {received}",
        )
    extra = _count_remaining(stream)
    if extra:
        raise IDXFormatError(
            source,
            f"trailing data after payload: {_describe(dims, code)} need {expected} payload "
            f"bytes, received {expected + extra} ({extra} byte(s) too many)",
        )

    array = buffer.view(dtype).reshape(dims)
    if dtype.itemsize > 1 and sys.byteorder == "little":
        array.byteswap(inplace=True)
        array = array.view(dtype.newbyteorder("="))
    elif dtype.itemsize == 1:
        array = array.view(dtype.newbyteorder("="))
    return array


def _read_any(raw: BinaryIO, source: str, payload_size: int | None) -> np.ndarray:
    """Sniff gzip, then parse; ``payload_size`` counts bytes after the magic of a raw stream."""
    head = raw.read(2)
    raw.seek(0)
    if head != _GZIP_MAGIC:
        return _read_stream(raw, source, payload_size)
    try:
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            return _read_stream(stream, source, None)  # type: ignore[arg-type]
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise IDXFormatError(source, f"corrupt or truncated gzip stream ({exc})") from exc


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed, into a numpy array.

    Args:
        path: the file. Compression is detected from its content, not its name.

    Returns:
        A writable, C-contiguous array of shape ``dims`` in native byte order,
        with dtype ``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or
        ``float64`` per the file's type code. It views the single buffer the
        payload was read into.

    Raises:
        FileNotFoundError: the file does not exist.
        IDXFormatError: bad magic number, unknown type code, truncated header or
            payload, trailing bytes, or a corrupt gzip stream.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        return _read_any(raw, str(path), max(size - 4, 0))


def read_idx_tensor(path: PathLike) -> torch.Tensor:
    """Read an IDX file into a CPU ``torch.Tensor`` (no copy beyond the file read).

    See :func:`read_idx` for the formats accepted and the errors raised.
    """
    return torch.from_numpy(read_idx(path))


def parse_idx(data: bytes | bytearray | memoryview, source: str = "<bytes>") -> np.ndarray:
    """Parse IDX content held in memory (raw or gzip-compressed).

    Args:
        data: the file's bytes.
        source: the name to use in error messages.

    Returns:
        The array, as :func:`read_idx` returns it (a fresh writable buffer).
    """
    view = memoryview(data)
    return _read_any(io.BytesIO(view), source, max(view.nbytes - 4, 0))


def _idx_code(dtype: np.dtype) -> int:
    native = dtype.newbyteorder("=")
    for code, idx_dtype in IDX_DTYPES.items():
        if idx_dtype.newbyteorder("=") == native:
            return code
    supported = ", ".join(str(d.newbyteorder("=")) for d in IDX_DTYPES.values())
    raise ValueError(f"IDX cannot store dtype {dtype}; supported dtypes: {supported}")


def write_idx(
    path: PathLike,
    array: np.ndarray | torch.Tensor,
    *,
    compress: bool | None = None,
    compresslevel: int = 6,
) -> Path:
    """Write an array as an IDX file.

    Args:
        path: destination file.
        array: array or tensor with at least one dimension, of dtype uint8,
            int8, int16, int32, float32 or float64.
        compress: gzip the file; ``None`` (default) compresses when ``path``
            ends in ``.gz``.
        compresslevel: gzip level, 0-9.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    The gzip header carries no timestamp, so equal arrays give equal files.
    """
    path = Path(path)
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    code = _idx_code(array.dtype)
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX stores arrays of 1 to 255 dimensions, got shape {array.shape}")
    if any(size >= 1 << 32 for size in array.shape):
        raise ValueError(f"IDX dimension sizes must fit in 32 bits, got shape {array.shape}")
    header = bytes((0, 0, code, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code])
    if compress is None:
        compress = path.suffix == ".gz"
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(open(path, "wb"))
        out: BinaryIO = raw
        if compress:
            out = stack.enter_context(  # type: ignore[assignment]
                gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0)
            )
        out.write(header)
        out.write(memoryview(payload.reshape(-1).view(np.uint8)))
    return path
