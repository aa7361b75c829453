"""`python -m finetune.encode`: features of a data set through an artifact's encoder, written to .npz."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from hydra import compose, initialize_config_dir

from finetune.encode import run_encoding
from pretrain import DigitsDataModule, StrataError, load_encoder, pretrain_stack, save_autoencoder
from pretrain.config import CONF_DIR, build_data

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    data = DigitsDataModule()
    data.setup()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    result = pretrain_stack(data.x_train, data.shift, data.scale, [16, 8], {"kind": "deterministic"}, epochs=1,
                            batch_size=64, trainer_options={"enable_progress_bar": False}, seed=0)
    torch.set_num_threads(threads)
    return save_autoencoder(result.model, tmp_path_factory.mktemp("encode") / "encoder")


def config(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("encode", overrides=list(overrides))


def expected_codes(cfg, artifact, layers="top"):
    data = build_data(cfg)
    encoder = load_encoder(artifact)
    with torch.no_grad():
        if layers == "top":
            return data, encoder(data.x_train).numpy(), encoder(data.x_test).numpy()
        return data, torch.cat(encoder.codes(data.x_train), 1).numpy(), torch.cat(encoder.codes(data.x_test), 1).numpy()


def test_command_round_trips_the_encoders_codes(artifact, tmp_path):
    out = tmp_path / "features.npz"
    args = [f"pretrained={artifact}", "data=digits", f"out={out}"]
    done = subprocess.run([sys.executable, "-m", "finetune.encode", *args, f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    data, z_train, z_test = expected_codes(config(*args), artifact)
    with np.load(out) as npz:
        assert sorted(npz.files) == ["y_test", "y_train", "z_test", "z_train"]
        assert npz["z_train"].shape == (len(data.x_train), 8)
        np.testing.assert_allclose(npz["z_train"], z_train, atol=1e-6)
        np.testing.assert_allclose(npz["z_test"], z_test, atol=1e-6)
        np.testing.assert_array_equal(npz["y_train"], data.y_train.numpy())
        np.testing.assert_array_equal(npz["y_test"], data.y_test.numpy())


def test_all_layers_and_exports(artifact, tmp_path):
    out = tmp_path / "features.npz"
    cfg = config(f"pretrained={artifact}", f"out={out}", "layers=all", "export=[onnx,torchscript]")
    written = run_encoding(cfg)
    assert set(written) == {"features", "onnx", "torchscript"}
    assert written["onnx"] == tmp_path / "features.onnx" and written["torchscript"] == tmp_path / "features.pt"
    data, z_train, _ = expected_codes(cfg, artifact, layers="all")
    with np.load(out) as npz:
        assert npz["z_train"].shape == (len(data.x_train), 24)
        np.testing.assert_allclose(npz["z_train"], z_train, atol=1e-6)
    session = onnxruntime.InferenceSession(str(written["onnx"]), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": data.x_train[:50].numpy()})[0], z_train[:50], atol=1e-5)
    np.testing.assert_allclose(torch.jit.load(str(written["torchscript"]))(data.x_train[:50]).detach().numpy(), z_train[:50], atol=1e-5)


def test_data_without_training_labels_gives_no_y_train(artifact, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x_train=rng.integers(0, 17, (40, 64)), x_test=rng.integers(0, 17, (10, 64)),
             y_test=rng.integers(0, 10, 10))
    run_encoding(config(f"pretrained={artifact}", "data=npz", f"data.path={tmp_path / 'data.npz'}", f"out={tmp_path / 'z.npz'}"))
    with np.load(tmp_path / "z.npz") as npz:
        assert sorted(npz.files) == ["y_test", "z_test", "z_train"]
        assert npz["z_train"].shape == (40, 8) and npz["z_test"].shape == (10, 8)


def test_data_of_another_width_is_a_clear_error_naming_both(artifact, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "narrow.npz", x_train=rng.random((30, 10)), x_test=rng.random((5, 10)), y_test=np.arange(5))
    cfg = config(f"pretrained={artifact}", "data=npz", f"data.path={tmp_path / 'narrow.npz'}", f"out={tmp_path / 'z.npz'}")
    with pytest.raises(StrataError, match=r"takes 64 features per example, but npz file .*narrow.npz has 10"):
        run_encoding(cfg)
    assert not (tmp_path / "z.npz").exists()


def test_existing_results_are_never_overwritten(artifact, tmp_path):
    out = tmp_path / "features.npz"
    out.write_bytes(b"earlier")
    with pytest.raises(StrataError, match="already exists"):
        run_encoding(config(f"pretrained={artifact}", f"out={out}"))
    assert out.read_bytes() == b"earlier"
    (tmp_path / "other.onnx").write_bytes(b"earlier")  # an export target that exists stops the run before anything is written
    with pytest.raises(StrataError, match="other.onnx already exists"):
        run_encoding(config(f"pretrained={artifact}", f"out={tmp_path / 'other.npz'}", "export=onnx"))
    assert not (tmp_path / "other.npz").exists()


@pytest.mark.parametrize("override, message", [("out=features.txt", "ending in .npz"),
                                               ("export=pickle", "'pickle' is not one of torchscript, onnx"),
                                               ("layers=middle", "layers='middle' is not one of top, all")])
def test_bad_options_are_clear_errors(artifact, tmp_path, override, message):
    with pytest.raises(StrataError, match=message):
        run_encoding(config(f"pretrained={artifact}", f"out={tmp_path / 'f.npz'}", override))
