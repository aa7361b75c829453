"""Reader for the IDX format of MNIST (http://yann.lecun.com/exdb/mnist/), gzip-compressed or not.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then one
big-endian 32-bit size per dimension, then the data.
"""
from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from .errors import StrataError

_UBYTE = 0x08


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes into an array of the shape its header gives."""
    path = Path(path)
    if not path.is_file():
        raise StrataError(f"IDX file not found: {path}")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise StrataError(f"{path}: cannot be read{' (a corrupt or truncated gzip file?)' if path.suffix == '.gz' else ''}: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise StrataError(f"{path}: not an IDX file (wrong magic number; expected two zero bytes, a type code and a dimension count)")
    if raw[2] != _UBYTE:
        raise StrataError(f"{path}: IDX type code 0x{raw[2]:02x} is not supported (expected 0x08, unsigned bytes)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0:
        raise StrataError(f"{path}: IDX header gives 0 dimensions (expected 1 for labels, 3 for images)")
    if len(raw) < header:
        raise StrataError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])  # unsigned: a count is never negative
    expected = math.prod(shape)
    if len(raw) - header != expected:
        raise StrataError(f"{path}: truncated or oversized IDX file: header says {shape} = {expected} bytes of data, file holds {len(raw) - header}")
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header).reshape(shape)  # writable, as torch expects
