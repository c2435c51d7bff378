"""Reading CoreML's weight file (``weights/weight.bin``, MIL blob storage version 2) with numpy.

Layout (little-endian): a 64-byte file header (``uint32 count, uint32 version`` + reserved), then
per blob a 64-byte metadata record at the offset the program names (``uint32 sentinel 0xDEADBEEF,
uint32 data type, uint64 size in bytes, uint64 absolute offset of the data, uint64 padding bits``
+ reserved), with the data itself 64-byte aligned. The element type and shape are taken from the
program's declared type of the value, so sub-byte types (uint1..uint6, int4) unpack correctly.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ....errors import RuntimeLoadError

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
    count = int(np.prod(shape)) if shape else 1
    buf = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray)) else raw
    if type_name in SUB_BYTE_TYPES:
        nbits, signed = SUB_BYTE_TYPES[type_name]
        return unpack_bits(buf, nbits, count, signed).reshape(shape)
    if type_name not in BYTE_TYPES:
        raise RuntimeLoadError(f"weight blob of type {type_name} is not supported by the emulator")
    dt = BYTE_TYPES[type_name]
    arr = np.frombuffer(buf.tobytes() if not isinstance(raw, (bytes, bytearray)) else raw,
                        dtype=dt, count=count)
    if type_name == "BOOL":
        arr = arr.astype(bool)
    return arr.reshape(shape)


class BlobFile:
    """One ``weight.bin``, read once into memory; ``read(offset, type, shape)`` decodes a blob."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.data = self.path.read_bytes()
        except OSError as exc:
            raise RuntimeLoadError(f"cannot read weight file {self.path}: {exc}") from exc
        if len(self.data) < 64:
            raise RuntimeLoadError(f"{self.path.name} is too short to be a CoreML weight file")
        self.count, self.version = struct.unpack_from("<II", self.data, 0)
        if self.version != 2:
            raise RuntimeLoadError(f"{self.path.name}: blob storage version {self.version} "
                                   "is not supported (expected 2)")

    def read(self, offset: int, type_name: str, shape: tuple[int, ...]) -> np.ndarray:
        if offset + 64 > len(self.data):
            raise RuntimeLoadError(f"{self.path.name}: blob offset {offset} is past the end of the file")
        sentinel, _dtype_code, size, data_offset = struct.unpack_from("<IIQQ", self.data, offset)
        if sentinel != _SENTINEL:
            raise RuntimeLoadError(f"{self.path.name}: no blob record at offset {offset}")
        if data_offset + size > len(self.data):
            raise RuntimeLoadError(f"{self.path.name}: blob at {offset} runs past the end of the file")
        raw = self.data[data_offset:data_offset + size]
        return decode_raw(raw, type_name, shape).copy()
