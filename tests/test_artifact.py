"""The artifact (config.json + weights.safetensors): it round-trips to identical outputs, loads without unpickling,
is never overwritten, and a broken one is refused with the file named."""
import json
import os
import pickle
import re
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from pretrain import StrataError, describe, load_autoencoder, load_encoder, pretrain_stack, save_autoencoder, save_encoder
from pretrain.config import layer_options
from test_layer import VARIANTS


def trained(config, digits, variant: str, sizes=(16, 8)):
    cfg = config(f"autoencoder={variant}", "trainer=fast")
    return pretrain_stack(digits.x_train, digits.shift, digits.scale, list(sizes), layer_options(cfg["autoencoder"], cfg["model"]),
                          epochs=1, batch_size=64, trainer_options=cfg["trainer"], seed=0).model


@pytest.fixture(scope="module")
def saved(config, digits, tmp_path_factory):
    """(the in-memory model, the path of its artifact)."""
    model = trained(config, digits, "denoising")
    path = save_autoencoder(model, tmp_path_factory.mktemp("artifact") / "encoder", config={"seed": 0}, metrics={"recon": 1.5})
    return model, path


@pytest.mark.parametrize("variant", VARIANTS)
def test_round_trip_gives_identical_codes_and_reconstructions(variant, config, digits, tmp_path):
    model = trained(config, digits, variant)
    path = save_autoencoder(model, tmp_path / "encoder")
    x = digits.x_test
    with torch.no_grad():
        codes, x_hat = model.embed(x), model.reconstruct(x)
        assert torch.equal(load_encoder(path)(x), codes)
        loaded = load_autoencoder(path)
        assert torch.equal(loaded.embed(x), codes)
        assert torch.equal(loaded.reconstruct(x), x_hat)
    assert [layer.spec() for layer in loaded.layers] == [layer.spec() for layer in model.layers]


def test_artifact_describes_itself(saved):
    model, path = saved
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights.safetensors"]
    description = describe(path)
    assert description["format"] == "strata.autoencoder" and description["input_dim"] == 64
    assert [(s["n_in"], s["n_hidden"]) for s in description["layers"]] == [(64, 16), (16, 8)]
    assert description["config"] == {"seed": 0} and description["metrics"] == {"recon": 1.5}
    assert json.loads((path / "config.json").read_text()) == description


def test_weights_are_safetensors_not_a_pickle(saved):
    _, path = saved
    raw = (path / "weights.safetensors").read_bytes()
    (header_size,) = struct.unpack("<Q", raw[:8])  # safetensors: an 8-byte header length, then a JSON header
    header = json.loads(raw[8 : 8 + header_size])
    assert "layers.0.encoder.weight" in header and header["layers.0.encoder.weight"]["shape"] == [16, 64]
    assert not raw.startswith(b"\x80") and not raw.startswith(b"PK")  # neither a pickle nor torch.save's zip


def test_loading_never_unpickles(saved, digits, monkeypatch):
    model, path = saved

    def refuse(*args, **kwargs):
        raise AssertionError("loading an artifact unpickled something")

    for target, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(target, name, refuse)
    with torch.no_grad():
        assert torch.equal(load_encoder(path)(digits.x_test), model.embed(digits.x_test))
        assert torch.equal(load_autoencoder(path).reconstruct(digits.x_test), model.reconstruct(digits.x_test))


class Payload:
    """What a malicious pickle could do on loading: here, create a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_in_place_of_the_weights_is_refused_not_run(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    marker = tmp_path / "the_pickle_ran"
    torch.save({"layers.0.encoder.weight": Payload(marker)}, bad / "weights.safetensors")
    with pytest.raises(StrataError, match="weights.safetensors"):
        load_encoder(bad)
    assert not marker.exists()


def test_an_existing_artifact_is_never_overwritten(saved, config, digits):
    _, path = saved
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    other = trained(config, digits, "plain")
    with pytest.raises(StrataError, match="already exists"):
        save_autoencoder(other, path)
    with pytest.raises(StrataError, match="already exists"):
        save_encoder(other.encoder(), path)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary folder left behind


def test_encoder_only_artifact(saved, tmp_path, digits):
    model, _ = saved
    path = save_encoder(model.encoder(), tmp_path / "features")
    with torch.no_grad():
        assert torch.equal(load_encoder(path)(digits.x_test), model.embed(digits.x_test))
    with pytest.raises(StrataError, match="encoder only"):
        load_autoencoder(path)


def edit_config(path: Path, change) -> None:
    description = json.loads((path / "config.json").read_text())
    change(description)
    (path / "config.json").write_text(json.dumps(description))


BREAKAGES = {
    "no config.json": (lambda p: os.remove(p / "config.json"), "config.json is missing"),
    "no weights": (lambda p: os.remove(p / "weights.safetensors"), "weights.safetensors is missing"),
    "config not JSON": (lambda p: (p / "config.json").write_text("{not json"), "not valid JSON"),
    "another format": (lambda p: edit_config(p, lambda d: d.update(format="something.else")), "not a strata artifact"),
    "a future version": (lambda p: edit_config(p, lambda d: d.update(version=99)), "artifact version 99"),
    "truncated weights": (lambda p: (p / "weights.safetensors").write_bytes((p / "weights.safetensors").read_bytes()[:100]),
                          "corrupt or truncated"),
    "another architecture": (lambda p: edit_config(p, lambda d: d["layers"][1].update(n_hidden=9)), "has shape (8, 16)"),
    "unknown activation": (lambda p: edit_config(p, lambda d: d["layers"][0].update(activation="swish")), "known activation"),
    "no layers": (lambda p: edit_config(p, lambda d: d.update(layers=[])), "non-empty list"),
    "a layer without sizes": (lambda p: edit_config(p, lambda d: d["layers"][0].pop("n_in")), "layers[0] has n_in=None"),
    "a broken chain": (lambda p: edit_config(p, lambda d: d["layers"][1].update(n_in=15)), "layers[1].n_in=15, but layers[0].n_hidden=16"),
    "another input size": (lambda p: edit_config(p, lambda d: d.update(input_dim=63)), "layers[0].n_in=64, but input_dim=63"),
    "no preprocessing": (lambda p: save_file({k: v for k, v in load_file(p / "weights.safetensors").items() if "preprocess" not in k},
                                             p / "weights.safetensors"), "tensor preprocess.shift is missing"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_a_broken_artifact_is_refused_with_the_problem_named(breakage, saved, tmp_path):
    _, path = saved
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    damage, message = BREAKAGES[breakage]
    damage(broken)
    for load in (load_encoder, load_autoencoder):
        with pytest.raises(StrataError, match=re.escape(message)):
            load(broken)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(StrataError, match="no such artifact folder"):
        load_encoder(tmp_path / "nothing")
