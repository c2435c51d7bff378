"""Reading a file a user handed us without letting its size decide how much memory we use."""
from __future__ import annotations

import os
from typing import BinaryIO


def read_at_most(f: BinaryIO, limit: int) -> bytes | None:
    """All of the open file ``f``, or None when it holds more than ``limit`` bytes: refused by its
    size before anything is read, and the read itself stops at ``limit + 1`` bytes (the file may
    grow meanwhile, or not be a regular file)."""
    try:
        size = os.fstat(f.fileno()).st_size
    except (OSError, ValueError):
        size = 0
    if size > limit:
        return None
    data = f.read(limit + 1)
    return None if len(data) > limit else data
