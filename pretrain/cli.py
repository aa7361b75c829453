"""The commands' entry points: Hydra's main, after a check of the command line that names a misspelt key or an
unknown option in one line, with what is valid and the nearest match (Hydra's own message is several lines that end
with advice about HYDRA_FULL_ERROR).

The check parses the overrides with Hydra's own parser, so it judges exactly what Hydra would compose: a group
option (`autoencoder=bogus`) must be a file of that group, and a key (`autoencoder.nosie=0.3`) must be one of the
composed config. Additions (`+key=...`), Hydra's own settings (`hydra.*`) and anything it cannot judge are left
to Hydra.
"""
from __future__ import annotations

import difflib
import functools
import os
import sys
from pathlib import Path

import hydra
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from .errors import StrataError
from .help import command_help
from .process import tune_command_process

COMMAND_ENV = "STRATA_COMMAND"  # the verb of the `strata` command that started this process (finetune.commands)
FLAGS_WITH_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}


def overrides_of(argv: list[str]) -> list[str] | None:
    """The overrides of a command line, or None where Hydra is asked for something else (--help, --cfg, ...)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-m", "--multirun"):
            continue
        elif arg in FLAGS_WITH_VALUE:
            return None
        elif arg.startswith("-"):
            return None
        else:
            out.append(arg)
    return out


def nearest(word: str, choices: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def check_overrides(conf_dir: str, config_name: str, args: list[str]) -> None:
    """Raise a StrataError for the first override that names an unknown group option or key."""
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except Exception as err:  # noqa: BLE001 - Hydra's parser errors: let Hydra report them
        del err
        return
    groups, keys = [], []
    for override in parsed:
        name = override.key_or_group
        if override.is_add() or override.is_force_add() or name.startswith("hydra") or "@" in name or override.package:
            continue
        folder = Path(conf_dir) / name
        if folder.is_dir():
            options = sorted(p.stem for p in folder.glob("*.yaml"))
            values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
            for value in values:
                if value is not None and str(value) not in options:
                    raise StrataError(f"{name}={value} is not an option of {name}{nearest(str(value), options)}; "
                                      f"its options: {', '.join(options)}")
            groups.append(f"{name}={values[0]}" if values and values[0] is not None else override.input_line)
        else:
            keys.append(name)
    if not keys:
        return
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
        cfg = compose(config_name, overrides=groups)
    for key in keys:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
        if isinstance(node, DictConfig) and leaf in node.keys():  # (`in node` is False for a ??? value)
            continue
        if not isinstance(node, DictConfig):  # a misspelt group or section: match the whole dotted key
            raise StrataError(f"{key} is not a key of the config{nearest(key, dotted_keys(cfg))}; its top-level keys: "
                              f"{', '.join(map(str, cfg.keys()))}")
        known = [str(k) for k in node.keys()]
        where = f"the keys of {parent}" if parent else "the top-level keys"
        raise StrataError(f"{key} is not a key of the config{nearest(leaf, known, f'{parent}.' if parent else '')}; "
                          f"{where}: {', '.join(known)}")


def dotted_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    out = []
    for key in cfg.keys():
        value = cfg._get_node(key)
        name = f"{prefix}{key}"
        out.append(name)
        if isinstance(value, DictConfig):
            out += dotted_keys(value, f"{name}.")
    return out


def command_name(task) -> str:
    """How the user started this command: `strata <verb>`, or `python -m <module>`."""
    verb = os.environ.get(COMMAND_ENV)
    if verb:
        return f"strata {verb}"
    module = task.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else None
    return f"python -m {module.removesuffix('.__main__')}" if module else f"python {sys.argv[0]}"


def strata_main(conf_dir: str, config_name: str):
    """`hydra.main` for a strata command, with the command line checked first (see the module docstring)."""

    def decorate(task):
        @functools.wraps(task)
        def tuned(cfg: DictConfig):
            tune_command_process()  # the command, never the library, tunes its process (pretrain.process)
            return task(cfg)

        hydra_main = hydra.main(config_path=conf_dir, config_name=config_name, version_base="1.3")(tuned)

        @functools.wraps(task)
        def main() -> None:
            if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
                print(command_help(conf_dir, config_name, command_name(task)))
                sys.exit(0)
            if "--version" in sys.argv[1:]:
                from . import __version__  # noqa: PLC0415

                print(f"strata-autoencoders {__version__}")
                sys.exit(0)
            args = overrides_of(sys.argv[1:])
            if args:
                try:
                    check_overrides(conf_dir, config_name, args)
                except StrataError as err:
                    print(f"error: {err}", file=sys.stderr)
                    sys.exit(2)
                finally:
                    GlobalHydra.instance().clear()
            return hydra_main()

        return main

    return decorate
