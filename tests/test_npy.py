"""Data beyond memory: a folder of (sharded) .npy files, memory-mapped, gives the numbers of the same arrays in an .npz;
greedy codes on disk give the artifact of codes in memory; each rank reads only its share; a memory map is never
copied whole."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from commands import run_main
from conftest import REPO
from finetune.__main__ import main as finetune_main
from pretrain import BatchLoader, NpyDataModule, NpzDataModule, pretrain_stack
from pretrain.__main__ import main as pretrain_main
from pretrain.rows import Rows


def arrays(n_train=300, n_test=60, d=36, floats=False, seed=0) -> dict:
    """Three classes that differ in their mean, as uint8 pixels (or floats of other units)."""
    rng = np.random.default_rng(seed)
    make = lambda y: (rng.random((len(y), d)) * 100 + 50 * y[:, None])  # noqa: E731
    y_train, y_test = np.arange(n_train) % 3 * 2 + 1, np.arange(n_test) % 3 * 2 + 1  # classes 1, 3, 5: mapped to 0..2
    x_train, x_test = make(y_train), make(y_test)
    cast = (lambda x: (x - 100).astype(np.float32)) if floats else (lambda x: x.astype(np.uint8))  # noqa: E731
    return {"x_train": cast(x_train), "y_train": y_train, "x_test": cast(x_test), "y_test": y_test}


def write_npy(folder, data: dict, shards: dict | None = None):
    """Each array as <name>.npy, or cut at `shards[name]` into <name>_000.npy, <name>_001.npy, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in data.items():
        cuts = (shards or {}).get(name)
        if cuts is None:
            np.save(folder / f"{name}.npy", array)
        else:
            for k, part in enumerate(np.split(array, cuts)):
                np.save(folder / f"{name}_{k:03d}.npy", part)
    return folder


SHARDS = {"x_train": [100, 220], "y_train": [150], "x_test": [25]}


def test_sharded_npy_is_read_as_the_npz_is(tmp_path):
    for floats in (False, True):
        data = arrays(floats=floats)
        np.savez(tmp_path / f"d{floats}.npz", **data)
        npz = NpzDataModule(str(tmp_path / f"d{floats}.npz"))
        npy = NpyDataModule(str(write_npy(tmp_path / f"d{floats}", data, SHARDS)))
        npz.setup(), npy.setup()
        assert isinstance(npy.x_train, Rows) and len(npy.x_train.shards) == 3 and npy.x_train.dtype == data["x_train"].dtype
        assert npy.scaling == npz.scaling == ("standard" if floats else "unit") and npy.classes == npz.classes == [1, 3, 5]
        assert torch.equal(npy.y_train, npz.y_train) and torch.equal(npy.y_test, npz.y_test)
        assert torch.equal(npy.val_index, npz.val_index) and npy.unit_interval == npz.unit_interval
        assert torch.equal(npy.x_train[torch.arange(300)], npz.x_train) and torch.equal(npy.x_test[:], npz.x_test)
        idx = torch.randperm(300)[:50]
        assert torch.equal(npy.x_train[idx], npz.x_train[idx])  # gathered across shards, in the asked order
        if floats:  # standardised: streamed in float64, as the whole tensor's float32 statistics to rounding
            assert torch.allclose(npy.shift, npz.shift, rtol=1e-5, atol=1e-4) and torch.allclose(npy.scale, npz.scale, rtol=1e-5)
        else:
            assert torch.equal(npy.shift, npz.shift) and torch.equal(npy.scale, npz.scale)
        assert "memory-mapped, 3 shard(s)" in npy.summary() and "streaming pass" in npy.summary()


def test_sharded_npy_pretrains_and_finetunes_to_the_npz_numbers(tmp_path, monkeypatch, capsys):
    data = arrays()
    np.savez(tmp_path / "data.npz", **data)
    folder = write_npy(tmp_path / "data", data, SHARDS)
    results = {}
    for kind, path in (("npz", tmp_path / "data.npz"), ("npy", folder)):
        run = tmp_path / f"pre_{kind}"
        code, err = run_main(pretrain_main, f"data={kind}", f"data.path={path}", "model.layers=[16,8]", "model.epochs=2",
                             "trainer.enable_progress_bar=false", "data.batch_size=32", f"hydra.run.dir={run}",
                             monkeypatch=monkeypatch, capsys=capsys)
        assert code == 0, err
        tuned = tmp_path / f"ft_{kind}"
        code, err = run_main(finetune_main, f"data={kind}", f"data.path={path}", f"pretrained={run / 'encoder'}",
                             "finetune.mode=semisup", "finetune.steps=20", "finetune.min_passes=null",
                             "finetune.epochs=2", "data.labels=30",
                             "data.val_from=labels", "trainer.enable_progress_bar=false", f"hydra.run.dir={tuned}",
                             monkeypatch=monkeypatch, capsys=capsys)
        assert code == 0, err
        metrics = json.loads((tuned / "metrics.json").read_text())
        results[kind] = ((run / "encoder" / "weights.safetensors").read_bytes(), (tuned / "head.safetensors").read_bytes(),
                         (tuned / "encoder" / "weights.safetensors").read_bytes(), metrics["test"], metrics["val"])
    assert results["npy"] == results["npz"]


def test_codes_on_disk_give_the_same_artifact_as_codes_in_memory(digits, tmp_path, fit_recorder):
    models, inputs = {}, {}
    for codes in ("memory", "disk"):
        recorder = fit_recorder()
        result = pretrain_stack(digits.x_train, digits.shift, digits.scale, [24, 16, 8], {"kind": "deterministic"}, epochs=2,
                                batch_size=64, trainer_options={"enable_progress_bar": False, "callbacks": [recorder]},
                                seed=0, codes=codes, codes_dir=tmp_path / codes)
        models[codes], inputs[codes] = result.model.state_dict(), recorder.inputs
        assert not (tmp_path / codes).exists()  # every codes file deleted, and its folder
    assert [type(x).__name__ for x in inputs["disk"]] == ["Tensor", "Rows", "Rows"]
    assert all(isinstance(x, torch.Tensor) for x in inputs["memory"])
    assert models["memory"].keys() == models["disk"].keys()
    assert all(torch.equal(models["memory"][k], models["disk"][k]) for k in models["memory"])
    half = pretrain_stack(digits.x_train, digits.shift, digits.scale, [24, 8], {"kind": "deterministic"}, epochs=1, batch_size=64,
                          trainer_options={"enable_progress_bar": False}, seed=0, codes="disk", codes_dir=tmp_path / "f16",
                          codes_dtype="float16")
    assert torch.isfinite(half.model.layers[1].encoder.weight).all() and half.metrics["codes"]["dtype"] == "float16"


def test_each_rank_reads_only_its_share_of_an_epoch(tmp_path, monkeypatch):
    folder = write_npy(tmp_path / "d", arrays(n_train=101), {"x_train": [40]})
    shares = []
    for rank in (0, 1):
        rows = Rows.open(sorted(folder.glob("x_train_*.npy")), "x_train")
        monkeypatch.setattr(BatchLoader, "_rank_and_world", staticmethod(lambda rank=rank: (rank, 2)))
        loader = BatchLoader(rows, batch_size=16, seed=3)
        shares.append(torch.cat(list(loader)))
        assert rows.rows_read == 50  # 101 rows, 2 ranks: 50 each, equal shares
    full = torch.as_tensor(arrays(n_train=101)["x_train"], dtype=torch.float32)
    order = torch.randperm(101, generator=torch.Generator().manual_seed(3 * 1_000_003))[:100]
    assert torch.equal(shares[0], full[order[0::2]]) and torch.equal(shares[1], full[order[1::2]])


MEMORY_PROBE = """
import sys, numpy as np
from pathlib import Path
from hydra import compose, initialize_config_dir
from pretrain import run_pretraining
from pretrain.config import CONF_DIR

def vm(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024

def pretrain(folder, run):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("pretrain", overrides=["data=npy", f"data.path={folder}", "model.layers=[16,8]", "model.epochs=1",
                                             "model.codes=disk", "pictures=false", "trainer=fast",
                                             "++trainer.limit_train_batches=50"])
    run_pretraining(cfg, Path(run))

tmp = Path(sys.argv[1])
pretrain(tmp / "small", tmp / "run_small")  # every import and first-use cost paid
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak resident set to the current one
before = vm("VmRSS:")
pretrain(tmp / "big", tmp / "run_big")
print("GROWTH", vm("VmHWM:") - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_a_memory_mapped_file_is_never_copied_whole(tmp_path):
    """A million rows of 64 uint8 values: 64 MB on disk, 256 MB as float32. Pretraining on them (the scaling's
    streaming pass, 50 batches a layer, every row's codes written to disk and read back by batch) grows the peak
    resident set by far less than the float32 copy a tensor would need."""
    rng = np.random.default_rng(0)
    for name, n in (("small", 1000), ("big", 1_000_000)):
        folder = tmp_path / name
        folder.mkdir()
        np.save(folder / "x_train.npy", rng.integers(0, 256, (n, 64), dtype=np.uint8))
        np.save(folder / "x_test.npy", rng.integers(0, 256, (100, 64), dtype=np.uint8))
        np.save(folder / "y_test.npy", np.arange(100) % 10)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(MEMORY_PROBE), str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                                                       **{k: v for k, v in __import__("os").environ.items() if k == "PYTHONPATH"}})
    assert done.returncode == 0, done.stderr
    growth = int(done.stdout.split("GROWTH")[-1])
    float32_size = 1_000_000 * 64 * 4
    assert growth < 0.25 * float32_size, f"peak RSS grew by {growth / 2**20:.0f} MiB (float32 data: {float32_size / 2**20:.0f} MiB)"
