"""The self-describing artifact: a folder with `config.json` (architecture, preprocessing, resolved config,
metrics) beside `weights.safetensors`. Loading reads tensors and JSON only, never pickles.

It is written to a temporary folder and renamed into place, so a folder that exists is whole, and an
existing artifact is never overwritten.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .encoder import Encoder, Preprocess
from .errors import StrataError
from .files import new_folder
from .layers import ACTIVATIONS, LAYER_KINDS

FORMAT = "strata.autoencoder"
VERSION = 1
CONFIG, WEIGHTS = "config.json", "weights.safetensors"


def save_artifact(path: str | Path, tensors: dict[str, torch.Tensor], description: dict) -> Path:
    """Write tensors and their description to the folder `path`, which must not exist yet."""
    def fill(folder: Path) -> None:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(folder / WEIGHTS))
        (folder / CONFIG).write_text(json.dumps({"format": FORMAT, "version": VERSION, **description}, indent=2, default=str))

    return new_folder(path, fill)[0]


def save_autoencoder(model, path: str | Path, config: dict | None = None, metrics: dict | None = None) -> Path:
    """Save a DeepAutoencoder (encoder and decoders) as an artifact."""
    description = {"input_dim": int(model.preprocess.shift.shape[0]),
                   "layers": [layer.spec() for layer in model.layers],
                   "config": config or {}, "metrics": metrics or {}}
    return save_artifact(path, model.state_dict(), description)


def save_encoder(encoder: Encoder, path: str | Path, config: dict | None = None, metrics: dict | None = None) -> Path:
    """Save an Encoder alone (a fine-tuned one, say); it loads with `load_encoder`, not `load_autoencoder`."""
    tensors = {"preprocess.shift": encoder.preprocess.shift, "preprocess.scale": encoder.preprocess.scale}
    specs = []
    for k, (lin, act) in enumerate(zip(encoder.linears, encoder.activations)):
        tensors[f"layers.{k}.encoder.weight"], tensors[f"layers.{k}.encoder.bias"] = lin.weight, lin.bias
        specs.append({"n_in": lin.in_features, "n_hidden": lin.out_features, "activation": act, "decoder": False})
    description = {"input_dim": encoder.input_dim, "layers": specs, "config": config or {}, "metrics": metrics or {}}
    return save_artifact(path, tensors, description)


def read_artifact(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The description and tensors of an artifact, checked for completeness and consistency."""
    path = Path(path)
    if path.is_file() and path.name in (CONFIG, WEIGHTS):
        path = path.parent
    if not path.is_dir():
        raise StrataError(f"pretrained={path}: no such artifact folder (expected a folder with {CONFIG} and {WEIGHTS})")
    for name in (CONFIG, WEIGHTS):
        if not (path / name).is_file():
            raise StrataError(f"pretrained={path}: {name} is missing, so this is not a whole strata artifact")
    try:
        description = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StrataError(f"{path / CONFIG}: not valid JSON ({err})") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise StrataError(f"{path / CONFIG}: not a strata artifact (expected format {FORMAT!r})")
    if description.get("version") != VERSION:
        raise StrataError(f"{path / CONFIG}: artifact version {description.get('version')!r}, this strata reads version {VERSION}")
    try:
        tensors = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise StrataError(f"{path / WEIGHTS}: corrupt or truncated weights file ({err})") from None
    layers = description.get("layers")
    if not isinstance(layers, list) or not layers:
        raise StrataError(f"{path / CONFIG}: field 'layers' must be a non-empty list")
    expected = {"preprocess.shift": (description.get("input_dim"),), "preprocess.scale": (description.get("input_dim"),)}
    for k, spec in enumerate(layers):
        if not isinstance(spec, dict) or spec.get("activation") not in ACTIVATIONS:
            raise StrataError(f"{path / CONFIG}: layers[{k}] is not a layer description with a known activation")
        sizes = (spec.get("n_in"), spec.get("n_hidden"))
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
            raise StrataError(f"{path / CONFIG}: layers[{k}] has n_in={sizes[0]!r}, n_hidden={sizes[1]!r} (expected positive integers)")
        feeder, fed = ("input_dim", description.get("input_dim")) if k == 0 else (f"layers[{k - 1}].n_hidden", layers[k - 1]["n_hidden"])
        if spec["n_in"] != fed:
            raise StrataError(f"{path / CONFIG}: layers[{k}].n_in={spec['n_in']}, but {feeder}={fed!r} (expected them equal)")
        expected |= {f"layers.{k}.encoder.weight": (spec["n_hidden"], spec["n_in"]), f"layers.{k}.encoder.bias": (spec["n_hidden"],)}
    if all(spec.get("decoder", False) for spec in layers):  # a whole autoencoder: its decoders' tensors too
        whole = autoencoder_skeleton(layers, path / CONFIG).state_dict()
        expected |= {k: tuple(v.shape) for k, v in whole.items() if k not in expected}
    for key, shape in expected.items():
        if key not in tensors:
            raise StrataError(f"{path / WEIGHTS}: tensor {key} is missing")
        if tuple(tensors[key].shape) != tuple(shape):
            raise StrataError(f"{path / WEIGHTS}: tensor {key} has shape {tuple(tensors[key].shape)}, "
                              f"but {CONFIG} describes {tuple(shape)} (an artifact of a different architecture?)")
    unexpected = sorted(tensors.keys() - expected.keys())
    if unexpected:
        raise StrataError(f"{path / WEIGHTS}: tensor {unexpected[0]}{f' and {len(unexpected) - 1} more' if len(unexpected) > 1 else ''} "
                          f"not described by {CONFIG} (its {len(layers)} layers; weights and description of different models?)")
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise StrataError(f"{path / WEIGHTS}: tensor {key} holds {int((~torch.isfinite(tensor)).sum())} NaN or infinite values")
    return description, tensors


def encoder_from_tensors(specs: list[dict], tensors: dict[str, torch.Tensor]) -> Encoder:
    """An `Encoder` from artifact-style layer descriptions and tensors, in eval mode.

    The linear layers are made without initialising them (`skip_init`), so building one draws nothing from
    torch's random generator.
    """
    linears = []
    for k, spec in enumerate(specs):
        lin = nn.utils.skip_init(nn.Linear, spec["n_in"], spec["n_hidden"])
        lin.load_state_dict({"weight": tensors[f"layers.{k}.encoder.weight"], "bias": tensors[f"layers.{k}.encoder.bias"]})
        linears.append(lin)
    preprocess = Preprocess(tensors["preprocess.shift"], tensors["preprocess.scale"])
    return Encoder(preprocess, linears, [spec["activation"] for spec in specs]).eval()


def autoencoder_skeleton(specs: list[dict], source: str = "artifact"):
    """The `DeepAutoencoder` the layer descriptions describe, its weights uninitialised in meaning (they are to be
    loaded); torch's random state is left as it was."""
    from .stack import DeepAutoencoder

    unknown = [s.get("kind") for s in specs if s.get("kind", "deterministic") not in LAYER_KINDS]
    if unknown:
        raise StrataError(f"{source}: layer kind {unknown[0]!r} is not one of {', '.join(LAYER_KINDS)}")
    with torch.random.fork_rng(devices=[]):  # layer constructors initialise weights that are overwritten at once
        try:
            layers = [LAYER_KINDS[s.get("kind", "deterministic")].from_spec(s) for s in specs]
        except KeyError as err:
            raise StrataError(f"{source}: a layer description lacks the field {err}") from None
    first = specs[0]["n_in"]
    return DeepAutoencoder(Preprocess(torch.zeros(first), torch.ones(first)), layers)


def autoencoder_from_tensors(specs: list[dict], tensors: dict[str, torch.Tensor], source: str = "artifact"):
    """The whole `DeepAutoencoder` (decoders included), in eval mode; torch's random state is left as it was."""
    if not all(spec.get("decoder", False) for spec in specs):
        raise StrataError(f"{source}: holds an encoder only (no decoder weights); use pretrain.load_encoder")
    model = autoencoder_skeleton(specs, source)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise StrataError(f"{source}: weights do not match the described architecture ({err})") from None
    return model.eval()


def load_encoder(path: str | Path) -> Encoder:
    """The encoder of an artifact as a torch module (preprocessing included), in eval mode."""
    description, tensors = read_artifact(path)
    return encoder_from_tensors(description["layers"], tensors)


def load_autoencoder(path: str | Path):
    """The whole DeepAutoencoder (embed, reconstruct, and further training), in eval mode."""
    description, tensors = read_artifact(path)
    return autoencoder_from_tensors(description["layers"], tensors, source=str(path))


def describe(path: str | Path) -> dict:
    """The artifact's description (config.json), checked."""
    return read_artifact(path)[0]
