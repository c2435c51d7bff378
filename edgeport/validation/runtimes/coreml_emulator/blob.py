"""Reading CoreML's weight file (``weights/weight.bin``, MIL blob storage version 2) with numpy.

Layout (little-endian): a 64-byte file header (``uint32 count, uint32 version`` + reserved), then
per blob a 64-byte metadata record at the offset the program names (``uint32 sentinel 0xDEADBEEF,
uint32 data type, uint64 size in bytes, uint64 absolute offset of the data, uint64 padding bits``
+ reserved), with the data itself 64-byte aligned. The element type and shape are taken from the
program's declared type of the value, so sub-byte types (uint1..uint6, int4) unpack correctly.
"""
from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np

from ....errors import RuntimeLoadError
from .files import regular_file

_SENTINEL = 0xDEADBEEF

# MIL data type name -> numpy dtype for byte-aligned types
BYTE_TYPES: dict[str, np.dtype] = {
    "FLOAT16": np.dtype("<f2"), "FLOAT32": np.dtype("<f4"), "FLOAT64": np.dtype("<f8"),
    "INT8": np.dtype("i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "BOOL": np.dtype("u1"),
}
# sub-byte types: (bits, signed)
SUB_BYTE_TYPES: dict[str, tuple[int, bool]] = {
    "UINT1": (1, False), "UINT2": (2, False), "UINT3": (3, False), "UINT4": (4, False),
    "UINT6": (6, False), "INT4": (4, True),
}


def unpack_bits(raw: np.ndarray, nbits: int, count: int, signed: bool = False) -> np.ndarray:
    """Elements of ``nbits`` each, packed least-significant bit first across bytes (CoreML's order)."""
    bits = np.unpackbits(np.asarray(raw, dtype=np.uint8), bitorder="little")
    need = nbits * count
    if bits.size < need:
        raise RuntimeLoadError(f"packed data holds {bits.size} bits, {need} needed")
    groups = bits[:need].reshape(count, nbits).astype(np.int32)
    values = groups @ (1 << np.arange(nbits, dtype=np.int32))
    if signed:  # two's complement
        values = np.where(values >= 1 << (nbits - 1), values - (1 << nbits), values)
        return values.astype(np.int8)
    return values.astype(np.uint8)


def decode_raw(raw: bytes | np.ndarray, type_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Bytes of a tensor of MIL type ``type_name`` -> numpy array of ``shape``."""
    count = math.prod(shape)
    need = stored_bytes(type_name, count)
    have = len(raw) if isinstance(raw, (bytes, bytearray)) else np.asarray(raw).nbytes
    if have < need:
        raise RuntimeLoadError(f"constant of type {type_name}{list(shape)} needs {need} bytes, has {have}")
    buf = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray)) else raw
    if type_name in SUB_BYTE_TYPES:
        nbits, signed = SUB_BYTE_TYPES[type_name]
        return unpack_bits(buf, nbits, count, signed).reshape(shape)
    dt = BYTE_TYPES[type_name]
    arr = np.frombuffer(buf.tobytes() if not isinstance(raw, (bytes, bytearray)) else raw,
                        dtype=dt, count=count)
    if type_name == "BOOL":
        arr = arr.astype(bool)
    return arr.reshape(shape)


def stored_bytes(type_name: str, count: int) -> int:
    """Bytes a tensor of ``count`` elements of MIL type ``type_name`` takes in a blob."""
    if type_name in SUB_BYTE_TYPES:
        return (SUB_BYTE_TYPES[type_name][0] * count + 7) // 8
    if type_name not in BYTE_TYPES:
        raise RuntimeLoadError(f"weight blob of type {type_name} is not supported by the emulator")
    return BYTE_TYPES[type_name].itemsize * count


class BlobFile:
    """One ``weight.bin``. Nothing is read up front: ``read(offset, type, shape)`` reads one
    blob's record and then exactly the bytes the declared type and shape need, after checking
    that the record and the data lie inside the file. The file is untrusted data, so a record
    claiming more bytes, or pointing past the end, is refused rather than followed."""

    def __init__(self, path: Path):
        self.path = regular_file(Path(path), "weight file")
        try:
            self._fh = open(self.path, "rb")
        except OSError as exc:
            raise RuntimeLoadError(f"cannot read weight file {self.path.name}: {exc.strerror}") from exc
        self.size = os.fstat(self._fh.fileno()).st_size
        if self.size < 64:
            self.close()
            raise RuntimeLoadError(f"{self.path.name} is too short to be a CoreML weight file")
        self.count, self.version = struct.unpack_from("<II", self._pread(0, 8), 0)
        if self.version != 2:
            self.close()
            raise RuntimeLoadError(f"{self.path.name}: blob storage version {self.version} "
                                   "is not supported (expected 2)")

    def _pread(self, offset: int, n: int) -> bytes:
        data = os.pread(self._fh.fileno(), n, offset)
        if len(data) != n:  # the file shrank under us
            raise RuntimeLoadError(f"{self.path.name}: short read at offset {offset}")
        return data

    def read(self, offset: int, type_name: str, shape: tuple[int, ...]) -> np.ndarray:
        if any(d < 0 for d in shape):
            raise RuntimeLoadError(f"{self.path.name}: weight with unknown shape {shape}")
        count = math.prod(shape)
        need = stored_bytes(type_name, count)
        if offset < 0 or offset + 64 > self.size:
            raise RuntimeLoadError(f"{self.path.name}: blob offset {offset} is past the end of the file")
        sentinel, _dtype_code, size, data_offset = struct.unpack_from("<IIQQ", self._pread(offset, 24), 0)
        if sentinel != _SENTINEL:
            raise RuntimeLoadError(f"{self.path.name}: no blob record at offset {offset}")
        if size < need:
            raise RuntimeLoadError(f"{self.path.name}: blob at {offset} holds {size} bytes, the program's "
                                   f"{type_name}{list(shape)} needs {need}")
        if data_offset + need > self.size:
            raise RuntimeLoadError(f"{self.path.name}: blob at {offset} runs past the end of the file")
        return decode_raw(self._pread(data_offset, need), type_name, shape).copy()

    def close(self) -> None:
        self._fh.close()
