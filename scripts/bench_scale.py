"""Data beyond memory: how greedy pretraining's time and peak memory grow with the number of rows (a benchmark, not a test).

    python scripts/bench_scale.py                                        # 250k, 500k, 1M, 2M rows; 784-1000-1000
    python scripts/bench_scale.py --sizes 250000,500000 --plot docs/bench_scale.png
    python scripts/bench_scale.py --sizes 2000000 --limit-train-batches 50     # the peak RSS at 2M rows, quickly

For each size it writes uint8 training inputs of 784 columns as `.npy` (synthetic pixels, or `--source mnist`: the MNIST
training images tiled), then runs `python -m pretrain data=npy data.path=<folder> model.layers=[...] model.epochs=1
model.codes=disk` as a fresh process, and reports its wall time, the time per row relative to the smallest size's, its
peak resident set (from wait4: that process alone; the data are written by another process, since a child's
ru_maxrss starts from its parent's peak) and, beside it, the size of the data as float32 (what a tensor of it
would take). The data files are written before the clock starts and deleted after each size.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
WIDTH = 784


def write_data(folder: Path, rows: int, source: str, seed: int = 0) -> None:
    """x_train.npy (rows x 784 uint8, written in blocks), x_test.npy and y_test.npy (1,000 rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if source == "mnist":
        sys.path.insert(0, str(REPO))
        from pretrain.data import MNIST_FILES, find_mnist_file
        from pretrain.idx import read_idx

        root = REPO.parent / "shared" / "data" / "mnist"
        base = read_idx(find_mnist_file(root, MNIST_FILES["x_train"])).reshape(-1, WIDTH)
        block = lambda start, n: base[np.arange(start, start + n) % len(base)]  # noqa: E731
    else:  # pixels of a few smooth blobs: not white noise, which no autoencoder can compress
        protos = (rng.random((64, WIDTH)) * 255).astype(np.uint8)
        block = lambda start, n: np.clip(protos[rng.integers(0, 64, n)] + rng.integers(-20, 21, (n, WIDTH)), 0, 255).astype(np.uint8)  # noqa: E731
    out = np.lib.format.open_memmap(folder / "x_train.npy", mode="w+", dtype=np.uint8, shape=(rows, WIDTH))
    for start in range(0, rows, 65536):
        n = min(65536, rows - start)
        out[start : start + n] = block(start, n)
    out.flush()
    del out
    np.save(folder / "x_test.npy", block(0, 1000))
    np.save(folder / "y_test.npy", np.arange(1000) % 10)


def run_pretrain(folder: Path, run_dir: Path, args) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in bytes, its output's last lines) of one `python -m pretrain` process."""
    command = [sys.executable, "-m", "pretrain", "data=npy", f"data.path={folder}", f"model.layers=[{args.layers}]",
               "model.epochs=1", f"model.codes={args.codes}", f"model.codes_dtype={args.codes_dtype}",
               f"data.batch_size={args.batch_size}", "pictures=false", "trainer.enable_progress_bar=false",
               f"hydra.run.dir={run_dir}"]
    if args.limit_train_batches:
        command.append(f"++trainer.limit_train_batches={args.limit_train_batches}")
    log = run_dir.parent / f"{run_dir.name}.log"
    with open(log, "w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"pretraining failed on {folder}:\n{text[-3000:]}")
    return seconds, usage.ru_maxrss * 1024, text


def plot(results: list[dict], path: Path, timed: bool = True) -> None:
    """Time per row (when each layer trained a whole epoch) and peak RSS against rows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4) if timed else (5, 4))
    FigureCanvasAgg(fig)
    rows = [r["rows"] for r in results]
    if timed:
        ax = fig.add_subplot(1, 2, 1)
        ax.plot(rows, [r["relative"] for r in results], "o-")
        ax.axhline(1.2, color="grey", linestyle="--", label="target 1.2x")
        ax.set(xscale="log", xlabel="training rows", ylabel="time per row / smallest size's", title="time per row")
        ax.legend()
    ax = fig.add_subplot(1, 2, 2) if timed else fig.add_subplot(1, 1, 1)
    ax.plot(rows, [r["rss"] / 2**30 for r in results], "o-", label="peak RSS")
    ax.plot(rows, [r["float32"] / 2**30 for r in results], "s--", label="the data as float32")
    ax.axhline(1.5, color="grey", linestyle=":", label="target at 2M rows: 1.5 GB")
    ax.set(xscale="log", yscale="log", xlabel="training rows", ylabel="GiB", title="peak RSS of `python -m pretrain`")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--write"]:  # python bench_scale.py --write FOLDER ROWS SOURCE
        write_data(Path(argv[1]), int(argv[2]), argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250000,500000,1000000,2000000", help="training rows, comma-separated")
    parser.add_argument("--layers", default="1000,1000", help="hidden sizes (default 1000,1000: 784-1000-1000)")
    parser.add_argument("--source", choices=("synthetic", "mnist"), default="synthetic")
    parser.add_argument("--codes", default="disk", help="model.codes (default disk: the path for data beyond memory)")
    parser.add_argument("--codes-dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--folder", type=Path, default=None, help="where to write the data (default: a temporary folder)")
    parser.add_argument("--plot", type=Path, default=None, help="also draw the two curves into this PNG")
    parser.add_argument("--limit-train-batches", type=int, default=None,
                        help="train each layer on this many batches only: a check of the peak RSS (the streaming pass and "
                             "every row's codes on disk still cover all rows), not of the time per row")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    base = Path(tempfile.mkdtemp(prefix="bench_scale_", dir=args.folder))
    print(f"784-{args.layers.replace(',', '-')}, one epoch a layer, batch {args.batch_size}, codes {args.codes} "
          f"({args.codes_dtype}), {args.source} uint8 data; sizes {', '.join(map(str, sizes))}; cpus {os.cpu_count()}"
          + (f"; ONLY {args.limit_train_batches} training batches a layer: peak RSS is meaningful, time per row is not"
             if args.limit_train_batches else ""), flush=True)
    results = []
    try:
        for rows in sizes:
            folder = base / f"data_{rows}"
            # in its own process: Linux carries a parent's peak RSS into a child's ru_maxrss (exec keeps the larger of
            # the two), so the process that starts pretraining must never have held the data itself
            subprocess.run([sys.executable, __file__, "--write", str(folder), str(rows), args.source], check=True)
            seconds, rss, text = run_pretrain(folder, base / f"run_{rows}", args)
            shutil.rmtree(folder)
            shutil.rmtree(base / f"run_{rows}", ignore_errors=True)
            per_row = seconds / rows
            results.append({"rows": rows, "seconds": seconds, "per_row": per_row, "rss": rss, "float32": rows * WIDTH * 4,
                            "relative": per_row / (results[0]["per_row"] if results else per_row)})
            r = results[-1]
            print(f"{rows:>9} rows: {seconds:8.1f} s, {per_row * 1e6:7.1f} us/row ({r['relative']:.2f}x the smallest), "
                  f"peak RSS {rss / 2**20:7.0f} MiB, data as float32 {r['float32'] / 2**20:7.0f} MiB", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("\n| rows | wall time (s) | time per row vs smallest | peak RSS (MiB) | data as float32 (MiB) | RSS / float32 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['rows']:,} | {r['seconds']:.0f} | {r['relative']:.2f}x | {r['rss'] / 2**20:.0f} | {r['float32'] / 2**20:.0f} | "
              f"{r['rss'] / r['float32']:.2f} |")
    if args.plot is not None:
        plot(results, args.plot, timed=not args.limit_train_batches)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
