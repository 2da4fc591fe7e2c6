"""Zarr v3 stores written by one creator and filled by chunk jobs (DESIGN.md, Stores).

Rules: the creator writes every array (fill value NaN), attribute and axis; a chunk
job writes only its own whole chunks (so concurrent jobs never share a chunk); a
reader refuses a store with NaN left and names the first incomplete chunk.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["IncompleteStoreError", "chunk_range", "parse_chunk", "create_store",
           "write_region", "read_complete", "store_stamp"]


class IncompleteStoreError(InputError, RuntimeError):
    """A store with unwritten chunks (NaN); the message names the first one."""


def parse_chunk(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--chunk must look like i/n (e.g. 0/4), got '{text}'") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--chunk {text}: need 0 <= i < n")
    return i, n


def chunk_range(length: int, i: int, n: int) -> slice:
    """The slice of an axis of ``length`` owned by chunk job i of n (whole chunks)."""
    c = max(1, math.ceil(length / n))
    return slice(min(i * c, length), min((i + 1) * c, length))


def create_store(path: str | Path, arrays: dict, attrs: dict, n_chunks: int):
    """Create a store. ``arrays`` maps name -> (shape, chunked axis or None, data or None,
    unit). An array with data is written now; one with a chunked axis gets chunks of
    ceil(length / n_chunks) along that axis (so job i owns chunk i) and NaN fill."""
    import zarr

    root = zarr.open_group(str(path), mode="w")
    for name, (shape, axis, data, unit) in arrays.items():
        if data is not None:
            data = np.asarray(data)
            arr = root.create_array(name, data=data, chunks=data.shape or "auto")
        else:
            chunks = list(shape)
            if axis is not None:
                chunks[axis] = max(1, math.ceil(shape[axis] / n_chunks))
            arr = root.create_array(name, shape=shape, dtype="f8", chunks=tuple(chunks),
                                    fill_value=np.nan)
        arr.attrs.update({"unit": unit, "chunked_axis": axis})
    root.attrs.update({**attrs, "n_chunks": n_chunks})
    return root


def write_region(path: str | Path, name: str, region: tuple, values) -> None:
    """Write ``values`` into ``region`` of array ``name`` (the caller owns the chunks)."""
    import zarr

    arr = zarr.open_array(str(Path(path) / name), mode="r+")
    arr[region] = values


def read_complete(path: str | Path, names: list[str] | None = None) -> dict:
    """Read arrays; raise `IncompleteStoreError` if any chunk is missing (NaN)."""
    import zarr

    root = zarr.open_group(str(path), mode="r")
    out = {}
    for name in names or _array_names(root):
        arr = root[name]
        try:
            data = arr[...]
        except Exception as exc:  # a chunk file cut short by a killed job
            raise IncompleteStoreError(f"{path}: array '{name}' cannot be read ({exc}); "
                                       "re-run its chunk jobs") from None
        axis = arr.attrs.get("chunked_axis")
        if np.issubdtype(np.asarray(data).dtype, np.floating) and np.isnan(data).any():
            if axis is None:
                raise IncompleteStoreError(f"{path}: array '{name}' has unwritten values")
            bad = np.isnan(data)
            other = tuple(k for k in range(data.ndim) if k != axis)
            first = int(np.flatnonzero(bad.any(axis=other))[0])
            c = arr.chunks[axis]
            raise IncompleteStoreError(
                f"{path}: array '{name}' is incomplete: chunk {first // c} "
                f"(index {first} of axis {axis}) was never written; re-run chunk job "
                f"{first // c}/{root.attrs.get('n_chunks')}")
        out[name] = data
    out["attrs"] = dict(root.attrs)
    return out


def store_stamp(path: str | Path) -> str:
    """A digest of a store's files (relative path, size, modification time in ns): it
    changes whenever a creator or chunk job rewrites any part of the store, so that
    results derived from an older state (a sampling checkpoint) can be recognised.
    A missing store stamps as "missing"."""
    import hashlib

    root = Path(path)
    if not root.exists():
        return "missing"
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _array_names(group, prefix: str = "") -> list[str]:
    names = [prefix + k for k in group.array_keys()]
    for k in group.group_keys():
        names += _array_names(group[k], prefix + k + "/")
    return names
