"""finetune.export: TorchScript and ONNX files give the PyTorch encoder's codes, at any batch size, and never overwrite."""
import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from finetune.export import export_onnx, export_torchscript
from pretrain.files import new_file
from finetune.features import compute_codes
from pretrain import StrataError, pretrain_stack

BATCH_SIZES = (5, 64)  # neither is the batch of 2 the exporters trace with


@pytest.fixture(scope="module")
def encoder(digits):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    result = pretrain_stack(digits.x_train, digits.shift, digits.scale, [16, 8], {"kind": "deterministic", "activation": "relu"},
                            epochs=1, batch_size=64, trainer_options={"enable_progress_bar": False}, seed=0)
    torch.set_num_threads(threads)
    return result.model.encoder().eval()


def pytorch_codes(encoder, x, layers):
    with torch.no_grad():
        return (encoder(x) if layers == "top" else torch.cat(encoder.codes(x), dim=1)).numpy()


@pytest.mark.parametrize("layers", ["top", "all"])
def test_torchscript_matches_pytorch(encoder, digits, tmp_path, layers):
    path = export_torchscript(encoder, tmp_path / "encoder.pt", layers=layers)
    loaded = torch.jit.load(str(path))
    for n in BATCH_SIZES:
        x = digits.x_test[:n]
        with torch.no_grad():
            got = loaded(x).numpy()
        assert got.shape == (n, 8 if layers == "top" else 24)
        np.testing.assert_allclose(got, pytorch_codes(encoder, x, layers), atol=1e-5)


@pytest.mark.parametrize("layers", ["top", "all"])
def test_onnx_matches_pytorch_with_a_dynamic_batch_axis(encoder, digits, tmp_path, layers):
    path = export_onnx(encoder, tmp_path / "encoder.onnx", layers=layers)
    graph = onnx.load(str(path)).graph
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")  # symbolic, not fixed to the traced batch
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in BATCH_SIZES:
        x = digits.x_test[:n]
        (got,) = session.run(None, {"x": x.numpy()})
        assert got.shape == (n, 8 if layers == "top" else 24)
        np.testing.assert_allclose(got, pytorch_codes(encoder, x, layers), atol=1e-5)
        np.testing.assert_allclose(got, compute_codes(encoder, x.numpy(), layers).numpy(), atol=1e-5)


@pytest.mark.parametrize("export", [export_torchscript, export_onnx])
def test_an_existing_file_is_never_overwritten(encoder, tmp_path, export):
    path = tmp_path / "model.bin"
    path.write_bytes(b"earlier result")
    with pytest.raises(StrataError, match="already exists"):
        export(encoder, path)
    assert path.read_bytes() == b"earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]  # no temporary file left behind


def test_a_write_that_fails_halfway_leaves_no_file(tmp_path):
    def write(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("exporter failed")

    with pytest.raises(RuntimeError, match="exporter failed"):
        new_file(tmp_path / "encoder.onnx", write)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_layers_choice_is_a_clear_error(encoder, tmp_path):
    with pytest.raises(StrataError, match="layers='middle' is not one of top, all"):
        export_onnx(encoder, tmp_path / "encoder.onnx", layers="middle")
    assert list(tmp_path.iterdir()) == []
