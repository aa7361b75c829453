"""A config group's option as a plain dict, read from the config files without Hydra's app (for the Python API):
the option's file merged over the files its `defaults` list names (`plain`, `plain@below`), as Hydra composes them."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from .config import CONF_DIR
from .errors import StrataError


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def group_option(group: str, name: str) -> dict:
    """conf/<group>/<name>.yaml composed with its defaults, as Hydra's `group=name` would give it."""
    path = Path(CONF_DIR) / group / f"{name}.yaml"
    if not isinstance(name, str) or not path.is_file():
        raise StrataError(f"{group}={name!r} is not one of {', '.join(group_options(group))}")
    own = OmegaConf.load(path)
    defaults = list(own.pop("defaults", []) or [])
    if "_self_" not in defaults:
        defaults.append("_self_")  # Hydra's default order: the file's own values last
    merged = OmegaConf.create()
    for entry in defaults:
        if entry == "_self_":
            merged = OmegaConf.merge(merged, own)
        else:
            option, _, package = str(entry).partition("@")
            below = group_option(group, option)
            merged = OmegaConf.merge(merged, {package: below} if package else below)
    return OmegaConf.to_container(merged, resolve=False)
