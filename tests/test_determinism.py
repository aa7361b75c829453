"""Same seed, same numbers on CPU: pretraining and fine-tuning run twice give bit-identical weights and identical
metrics (timings aside); another seed gives other weights, so the comparison means something. Noise is drawn
(masking corruption, a VAE's sampling, dropout) so that seeding, not its absence, is what is tested. Across
processes: test_resume compares a run made in this process with one made by a resumed `python -m pretrain`."""
import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

from finetune import run_finetuning
from pretrain import run_pretraining
from pretrain.config import CONF_DIR

TIMINGS = ("seconds", "samples_per_second")


def compose_config(name, *overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(name, overrides=["trainer=fast", "trainer.enable_progress_bar=false", *overrides])


def without_timings(m):
    if isinstance(m, dict):
        return {k: without_timings(v) for k, v in m.items() if k not in TIMINGS}
    if isinstance(m, list):
        return [without_timings(v) for v in m]
    return m


def weights(folder) -> dict:
    return {path.relative_to(folder).as_posix() + ":" + k: v
            for path in sorted(folder.rglob("*.safetensors")) for k, v in load_file(path).items()}


def identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def pretrain_runs(tmp_path, *overrides, seeds=(0, 0, 1)):
    dirs = []
    for i, seed in enumerate(seeds):
        dirs.append(tmp_path / f"run{i}")
        run_pretraining(compose_config("pretrain", "model.layers=[16,8]", "model.epochs=2", "pictures=false", f"seed={seed}",
                                       *overrides), dirs[-1])
    return dirs


@pytest.mark.parametrize("overrides", [["autoencoder=denoising"], ["autoencoder=vae", "model.end_to_end_epochs=1"]],
                         ids=["denoising", "vae end to end"])
def test_pretraining_twice_with_one_seed_is_bit_identical(overrides, tmp_path):
    first, again, other = pretrain_runs(tmp_path, *overrides)
    assert identical(weights(first / "encoder"), weights(again / "encoder"))
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (first, again)]
    assert without_timings(metrics[0]) == without_timings(metrics[1])
    assert not identical(weights(first / "encoder"), weights(other / "encoder"))


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pretrained")
    run_pretraining(compose_config("pretrain", "model.layers=[16]", "model.epochs=1", "pictures=false"), run_dir)
    return run_dir / "encoder"


def test_fine_tuning_twice_with_one_seed_is_bit_identical(artifact, tmp_path):
    runs = []
    for i, seed in enumerate((0, 0, 1)):
        runs.append(tmp_path / f"run{i}")
        run_finetuning(compose_config("finetune", f"pretrained={artifact}", "data.labels=50", "finetune.epochs=3",
                                      "finetune.dropout=0.3", "finetune.steps=12", "finetune.min_passes=null",
                                      f"seed={seed}"), runs[-1])
    first, again, other = runs
    assert identical(weights(first), weights(again))  # the fine-tuned encoder and the head
    metrics = [json.loads((d / "metrics.json").read_text()) for d in runs]
    assert without_timings(metrics[0]) == without_timings(metrics[1])
    assert not identical(weights(first), weights(other))
