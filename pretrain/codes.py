"""Where greedy pretraining keeps layer k's codes of the training set, the inputs of layer k+1 (`model.codes`):

    memory   one tensor, as before
    disk     an `.npy` in the run directory's `codes/` folder, written chunk by chunk (float32, or float16 with
             `model.codes_dtype=float16`) and read back memory-mapped, by batch; deleted once the next layer's
             codes exist, and the folder at the end of the run (or when it fails)
    auto     memory when the codes take at most a quarter of the memory available now, else disk

The codes are computed in the same chunks either way, so float32 codes on disk train the same layers as codes in memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import StrataError
from .rows import Rows

CODES = ("auto", "memory", "disk")
CODE_DTYPES = {"float32": np.float32, "float16": np.float16}
CHUNK = 8192  # rows encoded at a time (as stack.encode_in_chunks)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux's MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_codes_options(codes: str, dtype: str) -> None:
    if codes not in CODES:
        raise StrataError(f"model.codes={codes!r} is not one of {', '.join(CODES)}")
    if dtype not in CODE_DTYPES:
        raise StrataError(f"model.codes_dtype={dtype!r} is not one of {', '.join(CODE_DTYPES)}")


class GreedyCodes:
    """Computes each layer's codes of the stage's inputs, in memory or on disk as `codes` says; `close()` deletes
    whatever is still on disk."""

    def __init__(self, codes: str = "memory", folder: str | Path | None = None, dtype: str = "float32"):
        check_codes_options(codes, dtype)
        if codes != "memory" and folder is None:
            codes = "memory"  # no run directory to write into (a call from a script): as before
        self.codes, self.folder, self.dtype = codes, None if folder is None else Path(folder), np.dtype(CODE_DTYPES[dtype])
        self.current: Path | None = None
        self.placed: list[str] = []  # "memory" or "disk", per layer whose codes were computed

    def on_disk(self, n: int, width: int) -> bool:
        if self.codes != "auto":
            return self.codes == "disk"
        available = available_memory()
        return available is not None and n * width * 4 > available // 4

    @torch.no_grad()
    def __call__(self, layer, inputs, encode_in_chunks, name: str):
        """Layer `layer`'s codes of `inputs`: a tensor (memory) or memory-mapped Rows (disk); a previous layer's file,
        which `inputs` was read from, is deleted once these codes exist."""
        layer.eval()
        if not self.on_disk(len(inputs), layer.n_hidden):
            codes = encode_in_chunks(layer, inputs)
            self.placed.append("memory")
        else:
            codes = self._write(layer, inputs, name)
            self.placed.append("disk")
        self._drop_previous(keep=codes)
        return codes

    def _write(self, layer, inputs, name: str) -> Rows:
        from .data import BatchLoader  # the rank, under DDP: every rank writes its own file

        rank, world = BatchLoader._rank_and_world()
        path = self.folder / (f"{name}.npy" if world == 1 else f"{name}.rank{rank}.npy")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lo = hi = None
            with open(path, "wb") as f:  # plain writes: the written pages go to the page cache, not to this process
                first = layer.encode(inputs[:CHUNK])
                header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                          "shape": (len(inputs), *first.shape[1:])}
                np.lib.format.write_array_header_1_0(f, header)
                for i in range(0, len(inputs), CHUNK):
                    block, first = (first, None) if i == 0 else (layer.encode(inputs[i : i + CHUNK]), None)
                    stored = np.ascontiguousarray(block.cpu().numpy().astype(self.dtype, copy=False))
                    del block
                    b_lo, b_hi = stored.min(axis=0).astype(np.float32), stored.max(axis=0).astype(np.float32)
                    lo = b_lo if lo is None else np.minimum(lo, b_lo)
                    hi = b_hi if hi is None else np.maximum(hi, b_hi)
                    f.write(memoryview(stored).cast("B"))  # no bytes copy of the chunk
        except OSError as err:
            path.unlink(missing_ok=True)
            raise StrataError(f"cannot write {path}: {err.strerror or err}") from None
        rows = Rows.open([path], f"the codes of {name}")
        rows._extremes = (torch.as_tensor(lo), torch.as_tensor(hi), 0)  # known from writing: no second pass
        self._drop_previous(keep=None)
        self.current = path
        return rows

    def _drop_previous(self, keep) -> None:
        if self.current is not None and not (isinstance(keep, Rows) and str(self.current) in keep.names):
            self.current.unlink(missing_ok=True)
            self.current = None

    def close(self) -> None:
        """Delete the codes still on disk, and the folder when nothing else is in it."""
        if self.current is not None:
            self.current.unlink(missing_ok=True)
            self.current = None
        if self.folder is not None and self.folder.is_dir():
            try:
                self.folder.rmdir()
            except OSError:
                pass  # something else is in it (another rank's codes, under DDP): left to its writer
