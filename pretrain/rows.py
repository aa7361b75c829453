"""Rows that stay on disk: `.npy` files (one, or shards in name order) opened memory-mapped and read by batch or by
chunk, converted to float32 only as they are read (uint8 pixels stay uint8 on disk).

`Rows` stands in for a data module's input tensor when the data may not fit in memory. It answers what the stages ask
of their inputs: `len`, `shape`, rows by index or slice (a float32 tensor of those rows only), and the statistics the
scaling is fitted from (min, max, mean and std per feature), computed in streaming passes and kept. `Scaled` is the
same rows through the preprocessing, applied per batch; `Subset` a labeled subset of rows, kept as an index.

A page read through a map stays in the process's resident set until it is released: every `RELEASE_BYTES` read in
order, the maps are told their pages are not needed (madvise DONTNEED; the kernel's page cache still holds them).
Rows gathered at random (a shuffled batch) are read with pread from the file instead: a fault on a map maps in the
whole page-cache folio around it (up to megabytes on recent kernels), so a batch of 128 scattered rows would map in
hundreds of megabytes. Either way the resident set stays bounded whatever the files' size.
"""
from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import torch

from .errors import StrataError

RELEASE_BYTES = 32 << 20
CHUNK_BYTES = 8 << 20  # a streaming pass reads this much at a time
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def open_npy(path: Path) -> tuple[np.ndarray, mmap.mmap | None, int]:
    """The array in an `.npy` file, memory-mapped read-only (never read whole), and its map. A file that is not an
    `.npy`, holds objects, is in Fortran order or is shorter than its header says is refused, naming the file."""
    try:
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                reader = HEADER_READERS.get(version)
                if reader is None:
                    raise ValueError(f"format version {version[0]}.{version[1]} (expected 1.0 or 2.0, as np.save writes)")
                shape, fortran, dtype = reader(f)
            except ValueError as err:
                raise StrataError(f"{path}: not an .npy file that strata can map ({str(err).splitlines()[0]})") from None
            offset = f.tell()
            if dtype.hasobject:
                raise StrataError(f"{path}: holds Python objects (expected numbers; an .npy is never unpickled)")
            if fortran and len(shape) > 1:
                raise StrataError(f"{path}: stored in Fortran order (expected rows in C order, as np.save writes by default)")
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            held = path.stat().st_size - offset
            if held < expected:
                raise StrataError(f"{path}: truncated: its header says shape {shape} of {dtype} = {expected} bytes of data, "
                                  f"the file holds {held}")
            if expected == 0:
                return np.empty(shape, dtype), None, offset
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as err:
        raise StrataError(f"{path}: cannot be read ({err.strerror or err})") from None
    return np.ndarray(shape, dtype, buffer=mapped, offset=offset), mapped, offset


def shard_paths(folder: Path, stem: str) -> list[Path]:
    """`<stem>.npy` or its shards `<stem>*.npy` in `folder`, in name order."""
    return sorted(p for p in folder.glob(f"{stem}*.npy") if p.is_file())


def read_labels(paths: list[Path]) -> np.ndarray:
    """Labels are small (one number a row): read whole, shards concatenated."""
    parts = []
    for path in paths:
        array, _, _ = open_npy(path)
        if array.ndim != 1:
            raise StrataError(f"{path}: holds an array of shape {array.shape} (expected labels, one per row: shape (count,))")
        parts.append(np.array(array))
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class Rows:
    """Rows of one or more memory-mapped arrays (shards), each flattened to (rows, features); see the module docstring."""

    ndim = 2

    def __init__(self, shards: list[np.ndarray], maps: list | None = None, names: list[str] | None = None,
                 files: list[tuple[int, int] | None] | None = None):
        if not shards:
            raise ValueError("Rows needs at least one array")
        self.shards = [s.reshape(len(s), -1) for s in shards]  # a view of the map: C order, no copy
        self.maps = [m for m in (maps or []) if m is not None]
        self.files = files or [None] * len(shards)  # (descriptor, data offset) per shard, for pread
        self.names = names or ["array"] * len(shards)
        self.dtype = self.shards[0].dtype
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])
        self.shape = (int(self.starts[-1]), self.shards[0].shape[1])
        self.size = self.shape[0] * self.shape[1]
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self.rows_read = 0  # rows gathered by index or slice: what a rank read
        self._unreleased = 0
        self._extremes = None  # (per-feature min, per-feature max, non-finite count), from one streaming pass
        self._moments = None  # (per-feature mean, per-feature unbiased std)

    @classmethod
    def open(cls, paths: list[Path], what: str) -> "Rows":
        """`paths` memory-mapped as the shards of `what`: of one dtype and one width, or refused naming the file."""
        arrays, maps, files = [], [], []
        for path in paths:
            array, mapped, offset = open_npy(path)
            if array.ndim == 0:
                raise StrataError(f"{path}: holds a single number (expected {what} as an array with one row per example)")
            if arrays:
                first, width, first_width = paths[0], int(np.prod(array.shape[1:])), int(np.prod(arrays[0].shape[1:]))
                if width != first_width:
                    raise StrataError(f"{path}: rows of {width} features (shape {array.shape}), but {first.name} has "
                                      f"{first_width} (shape {arrays[0].shape}); every shard of {what} needs the same width")
                if array.dtype != arrays[0].dtype:
                    raise StrataError(f"{path}: holds {array.dtype}, but {first.name} holds {arrays[0].dtype} "
                                      f"(every shard of {what} needs one dtype)")
            arrays.append(array)
            maps.append(mapped)
            files.append(None if mapped is None else (os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)), offset))
        return cls(arrays, maps, [str(p) for p in paths], files)

    def __del__(self):
        for entry in getattr(self, "files", []):
            if entry is not None:
                try:
                    os.close(entry[0])
                except OSError:
                    pass

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Rows({self.shape[0]} x {self.shape[1]} {self.dtype}, {len(self.shards)} shard(s))"

    # -- reading ----------------------------------------------------------------------------------
    def release(self) -> None:
        """Drop the pages read so far from this process's resident set (the page cache keeps them)."""
        for mapped in self.maps:
            mapped.madvise(mmap.MADV_DONTNEED)
        self._unreleased = 0

    def _count(self, rows: int, contiguous: bool = True) -> None:
        self.rows_read += rows
        if contiguous:  # read through the map
            self._unreleased += rows * self.row_bytes
            if self._unreleased >= RELEASE_BYTES:
                self.release()

    def _gather(self, s: int, local: np.ndarray) -> np.ndarray:
        """Rows `local` (sorted) of shard `s` in its stored dtype, by pread: runs of consecutive rows in one call."""
        if self.files[s] is None:
            return np.array(self.shards[s][local])
        fd, offset = self.files[s]
        rb = self.row_bytes
        buf = bytearray(len(local) * rb)
        view = memoryview(buf)
        breaks = np.flatnonzero(np.diff(local) != 1) + 1
        for lo, hi in zip([0, *breaks.tolist()], [*breaks.tolist(), len(local)]):
            want, at = (hi - lo) * rb, offset + int(local[lo]) * rb
            got = os.preadv(fd, [view[lo * rb : hi * rb]], at)
            while got < want:  # a short read (signals, very large runs): go on where it stopped
                more = os.preadv(fd, [view[lo * rb + got : hi * rb]], at + got)
                if more == 0:
                    raise StrataError(f"{self.names[s]}: ended while reading it (truncated since it was opened?)")
                got += more
        return np.frombuffer(buf, self.dtype).reshape(len(local), self.shape[1])

    def slice_array(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop in their stored dtype (a copy, across shards as needed)."""
        start, stop = max(0, start), min(stop, len(self))
        parts = []
        for s, shard in enumerate(self.shards):
            lo, hi = max(start, self.starts[s]), min(stop, self.starts[s + 1])
            if lo < hi:
                parts.append(self._gather(s, np.arange(lo - self.starts[s], hi - self.starts[s])))
        self._count(max(0, stop - start), contiguous=False)
        if not parts:
            return np.empty((0, self.shape[1]), self.dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def take_array(self, index) -> np.ndarray:
        """The rows at `index` (any integer sequence), as float32, gathered in file order for locality."""
        idx = np.asarray(index.numpy() if isinstance(index, torch.Tensor) else index, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), self.shape[1]), np.float32)
        if len(idx):
            if idx.min() < 0 or idx.max() >= len(self):
                raise IndexError(f"row index out of range for {len(self)} rows")
            order = np.argsort(idx, kind="stable")
            ordered = idx[order]
            cuts = np.searchsorted(ordered, self.starts[1:-1], side="left")
            for s, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, len(idx)])):
                if lo < hi:
                    out[order[lo:hi]] = self._gather(s, ordered[lo:hi] - self.starts[s])
        self._count(len(idx), contiguous=False)
        return out

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return torch.from_numpy(np.asarray(self.slice_array(start, stop), dtype=np.float32))
            index = np.arange(start, stop, step)
        return torch.from_numpy(self.take_array(index))

    def chunks(self, rows: int | None = None):
        """(start, float32 tensor) for consecutive blocks of rows, each about CHUNK_BYTES of stored data."""
        rows = rows or max(1, CHUNK_BYTES // max(self.row_bytes, 1))
        for start in range(0, len(self), rows):
            yield start, self[start : start + rows]

    def subset(self, index) -> "Subset":
        return Subset(self, index)

    # -- the statistics the scaling is fitted from -------------------------------------------------
    def extremes(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Per-feature min and max (of the values as float32) and the count of NaN or infinite values: one pass."""
        if self._extremes is None:
            lo = hi = None
            bad = 0
            floating = np.issubdtype(self.dtype, np.floating)
            step = max(1, CHUNK_BYTES // max(self.row_bytes, 1))
            for shard in self.shards:
                for start in range(0, len(shard), step):
                    block = shard[start : start + step]  # a view of the map: read in place, not copied
                    self._count(len(block), contiguous=True)
                    if floating:
                        bad += int(block.size - np.isfinite(block).sum())
                        if bad:
                            continue  # refused anyway: the count is what is needed
                    b_lo, b_hi = block.min(axis=0), block.max(axis=0)
                    lo = b_lo if lo is None else np.minimum(lo, b_lo)
                    hi = b_hi if hi is None else np.maximum(hi, b_hi)
            self.release()
            d = self.shape[1]
            as_tensor = lambda v: torch.zeros(d) if v is None else torch.as_tensor(v.astype(np.float32))  # noqa: E731
            self._extremes = (as_tensor(lo), as_tensor(hi), bad)
        return self._extremes

    def nonfinite(self) -> int:
        return self.extremes()[2]

    def min(self) -> torch.Tensor:
        return self.extremes()[0].min()

    def max(self) -> torch.Tensor:
        return self.extremes()[1].max()

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-feature mean and unbiased std of the float32 values, in float64 over streamed chunks (Chan et al.'s
        pairwise combination), as float32."""
        if self._moments is None:
            n, mean, m2 = 0, np.zeros(self.shape[1]), np.zeros(self.shape[1])
            for _, block in self.chunks():
                b = block.numpy().astype(np.float64)
                nb, mb = len(b), b.mean(axis=0)
                m2b = ((b - mb) ** 2).sum(axis=0)
                delta = mb - mean
                total = n + nb
                mean = mean + delta * (nb / total)
                m2 = m2 + m2b + delta**2 * (n * nb / total)
                n = total
            std = np.sqrt(m2 / max(n - 1, 1)) if n > 1 else np.full(self.shape[1], np.nan)
            self._moments = (torch.as_tensor(mean.astype(np.float32)), torch.as_tensor(std.astype(np.float32)))
        return self._moments

    def mean(self, dim: int = 0) -> torch.Tensor:
        assert dim == 0
        return self.moments()[0]

    def std(self, dim: int = 0) -> torch.Tensor:
        assert dim == 0
        return self.moments()[1]

    def in_unit_interval(self, shift: torch.Tensor | None = None, scale: torch.Tensor | None = None) -> bool:
        """Whether every value, preprocessed by (x - shift) / scale where given, lies in [0, 1]; from the per-feature
        extremes (the preprocessing is increasing per feature, so the extremes map to the extremes)."""
        lo, hi, _ = self.extremes()
        if shift is not None:
            lo, hi = (lo - shift) / scale, (hi - shift) / scale
        return bool(lo.min() >= 0 and hi.max() <= 1)


class Scaled:
    """Rows through a preprocessing (x - shift) / scale, applied to each batch or chunk as it is read."""

    ndim = 2

    def __init__(self, rows: Rows, preprocess: torch.nn.Module):
        self.rows, self.preprocess = rows, preprocess
        self.shape = rows.shape

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> torch.Tensor:
        return self.preprocess(self.rows[index])

    def in_unit_interval(self) -> bool:
        return self.rows.in_unit_interval(self.preprocess.shift, self.preprocess.scale)


class Subset:
    """The rows of `rows` at `index`, read only when a batch of them is asked for (a labeled subset of a large set)."""

    ndim = 2

    def __init__(self, rows: Rows, index: torch.Tensor):
        self.rows, self.index = rows, torch.as_tensor(index, dtype=torch.long)
        self.shape = (len(self.index), rows.shape[1])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index) -> torch.Tensor:
        return self.rows[self.index[index]]


def take(x, index):
    """x[index]: a tensor's rows, or a lazy Subset of memory-mapped rows (not read until batched)."""
    return x[index] if isinstance(x, torch.Tensor) else x.subset(index)


def is_mapped(x) -> bool:
    return isinstance(x, (Rows, Scaled, Subset))


def in_unit_interval(x) -> bool:
    """Whether every value of `x` (a tensor, or rows read through a preprocessing) lies in [0, 1]: whether binary
    cross-entropy applies to it."""
    if isinstance(x, (Rows, Scaled)):
        return x.in_unit_interval()
    return bool(x.min() >= 0 and x.max() <= 1)
