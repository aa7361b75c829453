"""`python -m finetune.encode`: a data set through a pretrained encoder, written as features (conf/encode.yaml).

    x_train, y_train, x_test, y_test  ->  z_train, y_train, z_test, y_test   (one row of codes per input row)

The inputs are the data set's raw inputs, in the data module's order; the encoder applies the preprocessing
stored in its artifact. y_train is written where the data has training labels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pretrain import StrataError, load_encoder
from pretrain.cli import strata_main
from pretrain.config import CONF_DIR, build_data, to_dict
from pretrain.errors import exit_on_strata_error

from pretrain.files import new_file

from .export import EXPORTERS
from .features import check_layers, compute_codes


def export_formats(value) -> list[str]:
    """`export=` as a list of format names: [], "onnx", or [onnx, torchscript]."""
    formats = [] if value in (None, "", "none") else [value] if isinstance(value, str) else list(value)
    unknown = [f for f in formats if f not in EXPORTERS]
    if unknown:
        raise StrataError(f"export={value!r}: {unknown[0]!r} is not one of {', '.join(EXPORTERS)}")
    return list(dict.fromkeys(formats))


def run_encoding(cfg: DictConfig) -> dict[str, Path]:
    """Encode as `cfg` says; returns the paths written ("features" and one per export format)."""
    resolved = to_dict(cfg)
    layers = check_layers(resolved["layers"])
    out = Path(str(resolved["out"]))
    if out.suffix != ".npz":
        raise StrataError(f"out={out}: expected a file name ending in .npz")
    targets = {"features": out, **{fmt: out.with_suffix(EXPORTERS[fmt][1]) for fmt in export_formats(resolved["export"])}}
    for path in targets.values():  # checked up front, so that a run never stops half-written
        if path.exists():
            raise StrataError(f"{path} already exists: an earlier result is never overwritten (choose another out=)")

    encoder = load_encoder(resolved["pretrained"])
    data = build_data(cfg)
    if encoder.input_dim != data.input_dim:
        raise StrataError(f"pretrained={resolved['pretrained']} takes {encoder.input_dim} features per example, "
                          f"but {data.source_name()} has {data.input_dim} (an encoder pretrained on other data?)")
    arrays = {"z_train": compute_codes(encoder, data.x_train, layers).numpy()}
    if data.y_train is not None:
        arrays["y_train"] = np.asarray(data.classes)[data.y_train.numpy()]  # the labels as the data names them
    arrays["z_test"] = compute_codes(encoder, data.x_test, layers).numpy()
    arrays["y_test"] = np.asarray(data.classes)[data.y_test.numpy()]

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    new_file(out, write)
    for fmt, path in targets.items():
        if fmt != "features":
            EXPORTERS[fmt][0](encoder, path, layers=layers)
    print(f"encoded {data.source_name()} with {resolved['pretrained']} ({encoder.input_dim}-{'-'.join(map(str, encoder.sizes))}, "
          f"layers={layers}): z_train {arrays['z_train'].shape}, z_test {arrays['z_test'].shape}; "
          + ", ".join(str(p) for p in targets.values()))
    return targets


@strata_main(CONF_DIR, "encode")
@exit_on_strata_error
def main(cfg: DictConfig) -> None:
    run_encoding(cfg)


if __name__ == "__main__":
    main()
