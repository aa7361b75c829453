"""The kinds of layer by name, and which kind each layer of a stack is."""
from __future__ import annotations

from ..errors import StrataError
from ..optimizers import MODEL_FIELDS
from .adversarial import AdversarialLayer
from .base import Layer
from .deterministic import AutoencoderLayer
from .variational import VariationalLayer

# `autoencoder.kind` and the "kind" of every layer in an artifact's config.json: a name here is never renamed
LAYER_KINDS: dict[str, type[Layer]] = {cls.kind: cls for cls in (AutoencoderLayer, VariationalLayer, AdversarialLayer)}


def stack_layer_options(layer_options: dict, n_layers: int) -> list[dict]:
    """Each layer's options (its `kind` and keyword arguments) for a stack of `n_layers`.

    A top-only kind (generative) is the top layer only; the layers below it take the options under `below`, with the
    same optimizer settings. Any other kind applies to every layer.
    """
    options = dict(layer_options)
    kind = options.get("kind", "deterministic")
    below = options.pop("below", None)
    if kind not in LAYER_KINDS or not LAYER_KINDS[kind].top_only:
        if below is not None:
            raise StrataError(f"autoencoder.below applies under a generative top layer only (vae, adversarial), not kind={kind!r}")
        return [options] * n_layers
    if n_layers == 1:
        return [options]
    if not isinstance(below, dict):
        raise StrataError(f"autoencoder.kind={kind} with {n_layers} layers needs autoencoder.below: the options of the "
                          "deterministic layers under it (see conf/autoencoder/vae.yaml)")
    below = {**below, **{key: options[key] for key in MODEL_FIELDS if key in options}}
    below_kind = below.setdefault("kind", "deterministic")
    if below_kind not in LAYER_KINDS or LAYER_KINDS[below_kind].top_only:
        raise StrataError(f"autoencoder.below.kind={below_kind!r}: the layers below a {kind} top must be of a kind that is "
                          f"not top-only ({', '.join(k for k, c in LAYER_KINDS.items() if not c.top_only)})")
    return [below] * (n_layers - 1) + [options]
