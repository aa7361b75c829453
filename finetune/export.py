"""Export of the encoder, preprocessing included, for use outside Python's strata: TorchScript and ONNX.

Both take raw inputs (one example per row, the artifact's input width) and give the top layer's codes,
or with `layers="all"` every layer's codes side by side; the batch size is free. A file is written
under a temporary name and linked into place, so an existing file is never overwritten and a file that
exists is whole.

TorchScript is deprecated upstream (torch 2.13 warns on `torch.jit.trace`); ONNX, through the
`torch.export`-based exporter, is the format to prefer.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from pretrain import Encoder
from pretrain.files import new_file

from .features import feature_module

INPUT_NAME, OUTPUT_NAME = "x", "codes"


def _example(encoder: Encoder) -> torch.Tensor:
    """A batch of two inputs to trace with (two, so that no exporter specialises the batch axis to 1)."""
    return encoder.preprocess.shift.detach().expand(2, -1).clone()


def export_torchscript(encoder: Encoder, path: str | Path, layers: str = "top") -> Path:
    """Write the encoder as a traced TorchScript module (`torch.jit.load(path)(x)`)."""
    module = feature_module(encoder, layers).eval()

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated upstream; it still works
            torch.jit.save(torch.jit.trace(module, _example(encoder)), str(tmp))

    return new_file(path, write)


def export_onnx(encoder: Encoder, path: str | Path, layers: str = "top") -> Path:
    """Write the encoder as ONNX, input "x" (batch, input_dim) float32, output "codes" (batch, width).

    Uses the `torch.export`-based exporter (torch's default) with a symbolic batch axis, weights embedded
    in the file; the result is checked with `onnx.checker` before it is moved into place.
    """
    import onnx

    module = feature_module(encoder, layers).eval()
    batch = torch.export.Dim("batch", min=1)

    def write(tmp: Path) -> None:
        # the exporter warns about every optional torchvision op it skips, and its optimiser logs each pass
        logs = [logging.getLogger(name) for name in ("torch.onnx", "onnx_ir", "onnxscript")]
        levels = [log.level for log in logs]
        for log in logs:
            log.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")  # torch.export's own, not ours
                torch.onnx.export(module, (_example(encoder),), str(tmp), dynamo=True, external_data=False,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_shapes={"x": {0: batch}}, verbose=False)
        finally:
            for log, level in zip(logs, levels):
                log.setLevel(level)
        onnx.checker.check_model(str(tmp), full_check=True)

    return new_file(path, write)


EXPORTERS = {"torchscript": (export_torchscript, ".pt"), "onnx": (export_onnx, ".onnx")}
