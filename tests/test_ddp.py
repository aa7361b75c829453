"""Distributed data parallel runs (trainer=ddp) with 2 CPU processes (gloo) on digits: pretraining started by
Lightning's own launcher, fine-tuning under torchrun. Each rank trains on its half of every epoch, the ranks end
with the same weights and codes, rank 0 alone writes, and one run directory results."""
import csv
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from commands import run_main, run_process
from conftest import REPO
from finetune.__main__ import main as finetune_main
from finetune.classifier import load_classifier
from pretrain import BatchLoader, describe, pretrain_stack, save_autoencoder

N_TRAIN, BATCH = 1437, 64  # digits' training split, data.batch_size
QUIET = ["pictures=false", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def pretrained_ddp(tmp_path_factory):
    """`python -m pretrain trainer=ddp` (through tests/ddp_probe.py) in an empty folder, with Hydra's default,
    timestamped run directory."""
    cwd = tmp_path_factory.mktemp("ddp_pretrain")
    done = run_process(str(REPO / "tests" / "ddp_probe.py"), "trainer=ddp", "trainer.devices=2", "model.layers=[16,8]",
                       "model.epochs=2", *QUIET, cwd=cwd, timeout=240)
    assert done.returncode == 0, done.stderr
    return cwd, done


def test_ddp_pretraining_makes_one_run_directory_written_by_rank_zero(pretrained_ddp):
    cwd, done = pretrained_ddp
    runs = list((cwd / "outputs" / "pretrain").iterdir())
    assert len(runs) == 1, runs  # rank 1 was given rank 0's run directory, not a timestamp of its own
    assert sorted(p.name for p in cwd.iterdir()) == ["outputs"]
    run = runs[0]
    written = sorted(p.name for p in run.iterdir())
    assert written == [".hydra", "__main__.log", "encoder", "logs", "metrics.json", "rank0.safetensors",
                       "rank1.safetensors", "train_ddp_process_1.log"]  # the probe's files aside, rank 1 wrote its log only
    assert done.stdout.count("artifact:") == 1  # one report, from rank 0


def test_ddp_pretraining_artifact_and_metrics(pretrained_ddp, digits):
    run = next((pretrained_ddp[0] / "outputs" / "pretrain").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_train"] == N_TRAIN
    assert [(m["n_in"], m["n_hidden"]) for m in metrics["layers"]] == [(64, 16), (16, 8)]
    assert all(len(m["recon_per_epoch"]) == 2 and m["recon"] > 0 for m in metrics["layers"])
    description = describe(run / "encoder")
    assert description["config"]["trainer"]["strategy"] == "ddp" and description["metrics"] == metrics


def test_each_rank_trains_on_its_half_of_every_epoch(pretrained_ddp):
    """The CSV log's global step after each epoch: ceil(718 / 64) = 12 steps per epoch, where one process takes 23;
    so BatchLoader's shards were used as they are, not wrapped again in a sampler by Lightning."""
    run = next((pretrained_ddp[0] / "outputs" / "pretrain").iterdir())
    per_epoch = math.ceil((N_TRAIN // 2) / BATCH)
    for layer in ("layer1", "layer2"):
        with open(run / "logs" / layer / "metrics.csv") as f:
            steps = [int(row["step"]) for row in csv.DictReader(f)]
        assert steps == [per_epoch - 1, 2 * per_epoch - 1]


def test_ranks_end_with_the_same_weights_and_codes(pretrained_ddp):
    run = next((pretrained_ddp[0] / "outputs" / "pretrain").iterdir())
    rank0, rank1 = load_file(run / "rank0.safetensors"), load_file(run / "rank1.safetensors")
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    artifact = load_file(run / "encoder" / "weights.safetensors")
    assert all(torch.equal(artifact[k], rank0[k]) for k in artifact)  # the artifact is the ranks' common model
    assert rank0["codes"].shape == (N_TRAIN, 8)


@pytest.mark.parametrize("world", [2, 3])
def test_batch_loader_deals_equal_disjoint_shares(world, monkeypatch):
    """Every rank gets as many examples and batches (so ranks step together), no example twice in a pass."""
    x = torch.arange(1437.0)[:, None]
    shares = []
    for rank in range(world):
        monkeypatch.setattr(BatchLoader, "_rank_and_world", staticmethod(lambda rank=rank: (rank, world)))
        loader = BatchLoader(x, batch_size=64, seed=3)
        shares.append((len(loader), torch.cat(list(loader)).flatten()))
    assert len({n for n, _ in shares}) == 1 and len({len(s) for _, s in shares}) == 1
    seen = torch.cat([s for _, s in shares])
    assert len(seen) == 1437 - 1437 % world and len(torch.unique(seen)) == len(seen)


def test_ddp_fine_tuning_under_torchrun(tmp_path, digits):
    data = digits
    result = pretrain_stack(data.x_train, data.shift, data.scale, [16], {"kind": "deterministic"}, epochs=1, batch_size=64,
                            trainer_options={"enable_progress_bar": False}, seed=0)
    artifact = save_autoencoder(result.model, tmp_path / "encoder")
    run = tmp_path / "run"
    done = run_process("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "finetune",
                       "trainer=ddp", "trainer.devices=2", f"hydra.run.dir={run}", f"pretrained={artifact}", "data.labels=100",
                       "finetune.epochs=3", "finetune.steps=12", "finetune.min_passes=null", "data.val_from=pool",
                       "trainer.enable_progress_bar=false", timeout=240)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["encoder", "run"]
    assert {"metrics.json", "encoder", "head.safetensors"} <= {p.name for p in run.iterdir()}
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["labels"], metrics["budget"], metrics["epochs_run"]) == (100, 100, 3)
    assert metrics["test"]["n"] == len(data.x_test) and sum(map(sum, metrics["test"]["confusion_matrix"])) == len(data.x_test)
    with torch.no_grad():  # the saved classifier is the one that was evaluated
        predicted = load_classifier(run)(data.x_test).argmax(dim=1)
    assert float((predicted == data.y_test).float().mean()) == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)
    with open(run / "logs" / "finetune" / "metrics.csv") as f:
        steps = {int(row["step"]) for row in csv.DictReader(f) if row.get("val_acc")}
    # 12 steps in 3 epochs, on each rank (a batch of 32 for each): validated after steps 4, 8 and 12
    assert metrics["steps"] == 12 and steps == {3, 7, 11}


def test_ddp_in_a_multirun_is_refused(tmp_path, monkeypatch, capsys):
    """Lightning's launcher would re-run the whole sweep on every rank."""
    code, err = run_main(finetune_main, "-m", "trainer=ddp", "seed=0,1", "finetune.mode=scratch", f"hydra.sweep.dir={tmp_path}",
                         monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and "trainer.strategy=ddp in a multirun (-m)" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("metrics.json"))
