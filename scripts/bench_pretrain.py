"""Speed of greedy pretraining: strata's real code path against a minimal plain-PyTorch loop, and the fp32 matmul peak.

    python scripts/bench_pretrain.py                          # MNIST 784-1000-1000-1000, 2 epochs per layer, 3 repeats
    python scripts/bench_pretrain.py --epochs 1 --repeats 3 --batch-size 256 --layers 500,250

Both sides train the classic denoising layer (sigmoid units, masking noise, BCE-with-logits decoder, Adam) on the
same preprocessed MNIST training inputs, with the same initial weights, batch size and epochs; each layer trains on
the codes of the layer below, computed once. strata runs as `python -m pretrain data=mnist autoencoder=denoising
autoencoder.activation=sigmoid` would (its `run_pretraining` with the composed config: Lightning Trainer, default
trainer options, progress bar, per-epoch checkpoints, CSV logs, the artifact; the pictures, a report, are off); the
plain loop is the few lines anyone would write by hand, with the optimizer strata builds (Adam, fused kernel).

Every run is a fresh worker process (its own max RSS, no state carried over). Runs alternate strata/plain, each
starts once other processes leave the CPUs idle (or after --max-wait seconds), and each layer's time is the minimum
over the repeats, which discounts bursts of load from other processes on a shared machine; the table reports the
share of the CPUs others took during each run. The fp32 matmul peak is measured before and after the runs, best of both.

FLOPs counted: the matrix products of a training step and nothing else, 2*B*n_in*n_hidden each: encoder forward,
decoder forward, decoder input-gradient, decoder weight-gradient, encoder weight-gradient. That is 5, not the usual
3 per linear layer (6), because a greedy layer's input is data (or fixed codes) and its gradient is never computed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
MATMULS_PER_STEP = 5  # see the module docstring
RESULT_MARK = "BENCH_RESULT "


# -- the two workers -------------------------------------------------------------------------------
def compose_config(args) -> "DictConfig":  # noqa: F821 - omegaconf is imported lazily with hydra
    """The config `python -m pretrain data=mnist autoencoder=denoising autoencoder.activation=sigmoid` composes,
    with this run's sizes: the classic stacked denoising autoencoder, sigmoid units and BCE throughout."""
    from hydra import compose, initialize_config_dir

    from pretrain.config import CONF_DIR

    overrides = ["data=mnist", "autoencoder=denoising", "autoencoder.activation=sigmoid", f"data.root={args.root}", f"data.batch_size={args.batch_size}",
                 f"model.layers=[{','.join(map(str, args.layers))}]", f"model.epochs={args.epochs}", f"seed={args.seed}",
                 "++pictures=false"]  # pictures are a report, not pretraining
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("pretrain", overrides=overrides)


def run_strata(args) -> dict:
    """strata's pretraining exactly as `python -m pretrain` runs it (per-epoch checkpoints, CSV logs, the artifact),
    in a temporary run directory."""
    from pretrain import run_pretraining

    cfg = compose_config(args)
    try:  # what the command does to its process before it trains (malloc, the garbage collector)
        from pretrain.process import tune_command_process
    except ImportError:  # a strata from before pretrain/process.py: make_trainer did it
        pass
    else:
        tune_command_process()
    with tempfile.TemporaryDirectory() as run_dir:
        started = time.perf_counter()
        run_pretraining(cfg, Path(run_dir))
        total = time.perf_counter() - started
        metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    layers = [{"seconds": m["seconds"], "recon": m["recon"]} for m in metrics["layers"]]
    return {"layers": layers, "total": total, "n": metrics["n_train"]}


def run_plain(args) -> dict:
    """The same model, data and schedule as a minimal hand-written PyTorch loop."""
    import torch.nn.functional as F
    from torch import nn

    from pretrain.config import build_data, to_dict

    cfg = compose_config(args)
    resolved = to_dict(cfg)
    ae, model = resolved["autoencoder"], resolved["model"]
    expected = {"kind": "deterministic", "activation": "sigmoid", "tied": False, "corruption": "mask", "sparsity": "none",
                "wta_rate": None}
    if (any(ae[k] != v for k, v in expected.items()) or ae["loss"] not in ("auto", "bce") or model["optimizer"] != "adam"
            or model["weight_decay"] != 0):
        raise SystemExit(f"the plain loop implements {expected} with Adam, not {ae} {model}")
    noise, lr = ae["noise"], model["lr"]
    torch.manual_seed(args.seed)
    try:  # the threads strata's CLI picks for this model (torch's default for big ones, 1 for small ones)
        from pretrain.training import meta_stack, set_threads
    except ImportError:  # a strata from before thread choices: torch's default, as there
        pass
    else:
        dims = [784, *args.layers]
        set_threads(meta_stack(dims), resolved["threads"])

    started = time.perf_counter()
    data = build_data(cfg)
    x_raw, batch = data.unlabeled(), args.batch_size
    x = (x_raw - data.shift) / data.scale
    layers = []
    for k, n_hidden in enumerate(args.layers):
        n_in = x.shape[1]
        enc, dec = nn.Linear(n_in, n_hidden), nn.Linear(n_hidden, n_in)
        g = torch.Generator().manual_seed(args.seed * 1000 + k)  # strata's initial weights: Glorot-uniform, 4x for sigmoid
        bound = 4 * (6 / (n_in + n_hidden)) ** 0.5
        with torch.no_grad():
            enc.weight.copy_(torch.rand(enc.weight.shape, generator=g) * 2 * bound - bound)
            dec.weight.copy_(torch.rand(dec.weight.shape, generator=g) * 2 * bound - bound)
            enc.bias.zero_()
            dec.bias.zero_()
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=lr, fused=True)  # as strata builds it
        layer_started = time.perf_counter()
        for _ in range(args.epochs):
            total = torch.zeros(())
            for idx in torch.randperm(len(x)).split(batch):
                xb = x[idx]
                h = torch.sigmoid(enc(xb * (torch.rand_like(xb) >= noise)))
                loss = F.binary_cross_entropy_with_logits(dec(h), xb, reduction="sum") / len(xb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.detach() * len(xb)
        seconds = time.perf_counter() - layer_started
        layers.append({"seconds": seconds, "recon": float(total) / len(x)})
        with torch.no_grad():
            x = torch.sigmoid(enc(x))  # the codes the next layer trains on
    return {"layers": layers, "total": time.perf_counter() - started, "n": len(x_raw)}


def worker(args) -> None:
    from pretrain.errors import exit_on_strata_error

    result = exit_on_strata_error(run_strata if args.worker == "strata" else run_plain)(args)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    result["threads"] = torch.get_num_threads()
    print(RESULT_MARK + json.dumps(result), flush=True)


# -- the matmul peak -------------------------------------------------------------------------------
def best_seconds(fn, reps: int) -> float:
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def step_products(batch: int, n_in: int, n_hidden: int):
    """The 5 products of one training step, with the operand layouts autograd hands to mm."""
    x, g_out, g_hid = torch.rand(batch, n_in), torch.rand(batch, n_in), torch.rand(batch, n_hidden)
    h, w_enc, w_dec = torch.rand(batch, n_hidden), torch.rand(n_hidden, n_in), torch.rand(n_in, n_hidden)
    return [lambda: torch.mm(x, w_enc.t()), lambda: torch.mm(h, w_dec.t()), lambda: torch.mm(g_out, w_dec),
            lambda: torch.mm(g_out.t(), h), lambda: torch.mm(g_hid.t(), x)]


def measure_mm(batch: int, shapes: list[tuple[int, int]], reps: int = 15) -> dict:
    """Seconds of torch.mm (fp32, torch's threads): a 1024^3 product, and one step's 5 products per layer shape."""
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    out = {"1024^3": best_seconds(lambda: torch.mm(a, b), reps)}
    for n_in, n_hidden in shapes:
        out[f"{n_in}x{n_hidden}"] = sum(best_seconds(p, reps) for p in step_products(batch, n_in, n_hidden))
    return out


def flops_of(key: str, batch: int) -> float:
    if key == "1024^3":
        return 2 * 1024**3
    n_in, n_hidden = map(int, key.split("x"))
    return MATMULS_PER_STEP * 2 * batch * n_in * n_hidden


# -- the machine's load ----------------------------------------------------------------------------
def cpu_seconds() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, summed over CPUs (Linux /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields) - idle) / hz, sum(fields) / hz


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_until_idle(max_wait: float, threshold: float = 0.1) -> None:
    """Wait (up to max_wait seconds) for a second in which other processes keep the CPUs under 10% busy."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        before = cpu_seconds()
        time.sleep(1.0)
        after = cpu_seconds()
        if before is None or after is None or (after[0] - before[0]) <= threshold * (after[1] - before[1]):
            return
    print(f"  (the machine is still busy after {max_wait:.0f} s of waiting; measuring anyway)", file=sys.stderr)


# -- the driver ------------------------------------------------------------------------------------
def run_worker(kind: str, args) -> dict:
    """One fresh worker process; records the share of the CPUs that other processes took while it ran."""
    cmd = [sys.executable, __file__, "--worker", kind, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--layers", ",".join(map(str, args.layers)), "--root", str(args.root), "--seed", str(args.seed)]
    wait_until_idle(args.max_wait)
    machine, own = cpu_seconds(), children_cpu_seconds()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"the {kind} worker failed (exit status {proc.returncode})")
    result = json.loads(lines[-1][len(RESULT_MARK):])
    after = cpu_seconds()
    if machine is not None and after is not None:
        others = (after[0] - machine[0]) - (children_cpu_seconds() - own)
        result["others_share"] = max(0.0, others / (after[1] - machine[1]))
    return result


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(args, runs: dict, mm: dict, loads: tuple[float, float]) -> str:
    dims = [784, *args.layers]  # MNIST's 28x28 inputs
    shapes = list(zip(dims[:-1], dims[1:]))
    rates = {key: flops_of(key, args.batch_size) / s / 1e9 for key, s in mm.items()}
    peak_key = max(rates, key=rates.get)
    peak = rates[peak_key]
    n = runs["strata"][0]["n"]
    best = {kind: [min(r["layers"][k]["seconds"] for r in rs) for k in range(len(shapes))] for kind, rs in runs.items()}
    total = {kind: min(r["total"] for r in rs) for kind, rs in runs.items()}
    recon = {kind: rs[-1]["layers"] for kind, rs in runs.items()}

    lines = [
        f"MNIST {'-'.join(map(str, dims))}, denoising (masking noise), batch {args.batch_size}, {args.epochs} epoch(s) per layer, "
        f"{n} training inputs; best of {args.repeats} alternating runs per side",
        f"machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {runs['strata'][0]['threads']} threads; "
        f"load average {loads[0]:.1f} at start, {loads[1]:.1f} at end",
        f"fp32 torch.mm peak: {peak:.0f} GFLOP/s (best of: " + ", ".join(
            f"{'1024^3' if k == '1024^3' else 'layer ' + k.replace('x', '->') + ' step products'} {r:.0f}" for k, r in rates.items()) + ")",
        f"FLOPs counted: {MATMULS_PER_STEP} matmuls x 2*B*n_in*n_hidden per step (forward, decoder input-grad, both weight-grads; "
        "the input-grad of a greedy layer is never computed); elementwise work, bias gradients and Adam not counted",
        "",
        "| layer | shape | strata s | plain s | strata / plain | strata samples/s | strata GFLOP/s | of mm peak "
        "| plain GFLOP/s (of peak) | recon strata / plain |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    def rates(flops: float, s: float, p: float) -> str:
        """strata's GFLOP/s and share of the peak, then the plain loop's GFLOP/s (share), as three cells."""
        return f"{flops / s / 1e9:.0f} | {flops / s / 1e9 / peak:.2f} | {flops / p / 1e9:.0f} ({flops / p / 1e9 / peak:.2f})"

    all_flops = 0.0
    for k, (n_in, n_hidden) in enumerate(shapes):
        flops = MATMULS_PER_STEP * 2 * n_in * n_hidden * n * args.epochs
        all_flops += flops
        s, p = best["strata"][k], best["plain"][k]
        lines.append(f"| {k + 1} | {n_in}->{n_hidden} | {s:.2f} | {p:.2f} | {s / p:.3f} | {args.epochs * n / s:,.0f} | "
                     f"{rates(flops, s, p)} | {recon['strata'][k]['recon']:.2f} / {recon['plain'][k]['recon']:.2f} |")
    s, p = sum(best["strata"]), sum(best["plain"])
    lines.append(f"| all (training) | | {s:.2f} | {p:.2f} | {s / p:.3f} | {args.epochs * n * len(shapes) / s:,.0f} | "
                 f"{rates(all_flops, s, p)} | |")
    s, p = total["strata"], total["plain"]
    lines.append(f"| all (end to end) | | {s:.2f} | {p:.2f} | {s / p:.3f} | | {rates(all_flops, s, p)} | |")
    rss = {kind: max(r["max_rss_mb"] for r in rs) for kind, rs in runs.items()}
    lines += [
        "",
        "Per layer: the time of the layer's training (strata: its `trainer.fit`, Lightning's set-up and the per-epoch "
        "checkpoints included). End to end: loading MNIST, preprocessing, every layer, the codes for the next layer "
        "(strata: and writing the artifact).",
        f"Peak memory (process max RSS, ru_maxrss, MNIST data included): strata {rss['strata']:,.0f} MB, plain {rss['plain']:,.0f} MB.",
        "All runs, seconds per layer (and the share of the CPUs other processes took meanwhile): " + "; ".join(
            f"{kind} " + " ".join(run_summary(r) for r in rs) for kind, rs in runs.items()),
    ]
    return "\n".join(lines)


def run_summary(run: dict) -> str:
    others = f" ({run['others_share']:.0%})" if "others_share" in run else ""
    return "[" + ", ".join(f"{layer['seconds']:.2f}" for layer in run["layers"]) + "]" + others


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per layer (default 2)")
    parser.add_argument("--batch-size", type=int, default=128, help="mini-batch size of both sides (default 128, conf/data/mnist.yaml's)")
    parser.add_argument("--layers", type=str, default="1000,1000,1000", help="hidden sizes, comma-separated (default 1000,1000,1000)")
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "mnist", help="folder of the MNIST IDX files")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side; each layer's best counts (default 3)")
    parser.add_argument("--max-wait", type=float, default=30.0,
                        help="before each run, wait up to this many seconds for other processes to leave the CPUs idle (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=("strata", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.layers = [int(v) for v in args.layers.split(",")]
    except ValueError:
        parser.error(f"--layers={args.layers!r} is not a comma-separated list of integers (e.g. 1000,1000,1000)")
    for name in ("epochs", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)} is not a positive integer")
    if args.max_wait < 0:
        parser.error(f"--max-wait={args.max_wait} is negative")
    if not args.layers or min(args.layers) < 1:
        parser.error(f"--layers={args.layers} holds a size below 1")
    if args.worker is None and not args.root.is_dir():
        parser.error(f"--root={args.root}: no such folder (expected the four MNIST IDX files in it)")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    dims = [784, *args.layers]
    shapes = list(dict.fromkeys(zip(dims[:-1], dims[1:])))  # each distinct layer shape once
    load_start = os.getloadavg()[0]
    wait_until_idle(args.max_wait)
    mm = measure_mm(args.batch_size, shapes)
    runs = {"strata": [], "plain": []}
    for r in range(args.repeats):
        for kind in (("strata", "plain") if r % 2 == 0 else ("plain", "strata")):
            print(f"run {r + 1}/{args.repeats}: {kind} ...", file=sys.stderr, flush=True)
            runs[kind].append(run_worker(kind, args))
    wait_until_idle(args.max_wait)
    mm = {key: min(s, t) for (key, s), t in zip(mm.items(), measure_mm(args.batch_size, shapes).values())}
    print(report(args, runs, mm, (load_start, os.getloadavg()[0])))


if __name__ == "__main__":
    main()
