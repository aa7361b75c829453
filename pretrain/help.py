"""`--help` of a strata command: what it does, each config group's options with the comment that opens each
option's file, and every setting of the default config with the comment beside it in its file. (Hydra's own help
names the Python module, `__main__`, and prints the config without its comments.)"""
from __future__ import annotations

import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w-]*):(.*?)(?:\s+#\s?(.*))?$")


def header(path: Path, limit: int = 150) -> str:
    """The first sentence of the comment that opens a config file."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not line.lstrip("#").strip().startswith("@package"):
            lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    end = re.search(r"(?<! al)\.\s", text)  # the first full stop that ends a sentence (not "et al.")
    text = text[: end.start() + 1] if end else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render(value) -> str:
    """A value as it is written on the command line (true, null, [256,256])."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(render(v) for v in value) + "]"
    return str(value)


def key_comments(path: Path, seen: set | None = None) -> dict[str, str]:
    """{dotted key: the comment on its line} of a config file and of the files of its group it extends."""
    seen = seen or set()
    if path in seen or not path.is_file():
        return {}
    seen.add(path)
    comments, stack = {}, []
    for line in path.read_text().splitlines():
        match = KEY_LINE.match(line)
        if not match or line.lstrip().startswith("-"):
            continue
        indent, key, _, comment = match.groups()
        stack = [(i, k) for i, k in stack if i < len(indent)]
        stack.append((len(indent), key))
        if comment:
            comments.setdefault(".".join(k for _, k in stack), comment.strip())
    defaults = OmegaConf.load(path).get("defaults", []) if path.suffix == ".yaml" else []
    for entry in defaults or []:
        if isinstance(entry, str) and entry != "_self_":  # an option of the same group that this one extends
            for key, comment in key_comments(path.parent / f"{entry}.yaml", seen).items():
                comments.setdefault(key, comment)
    return comments


def flat(cfg, prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for key in cfg.keys():
        node = cfg._get_node(key)
        name = f"{prefix}{key}"
        if isinstance(node, DictConfig) and len(node):
            out += flat(node, f"{name}.")
        else:
            value = "???" if node._is_missing() else "{}" if isinstance(node, DictConfig) else node._value()
            out.append((name, render(OmegaConf.to_container(node) if OmegaConf.is_list(node) and not node._is_missing() else value)))
    return out


def command_help(conf_dir: str, config_name: str, command: str) -> str:
    conf = Path(conf_dir)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
            cfg = compose(config_name, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    choices = {g: o for g, o in cfg.hydra.runtime.choices.items() if not g.startswith("hydra")}
    primary = [conf / f"{config_name}.yaml"]
    for entry in OmegaConf.load(primary[0]).get("defaults", []):
        if isinstance(entry, str) and entry != "_self_" and (conf / f"{entry}.yaml").is_file():
            primary.append(conf / f"{entry}.yaml")  # a config that extends another (mnist_table: compare)
    about = [line.lstrip("#").strip() for line in primary[0].read_text().splitlines() if line.startswith("#")]
    if about and about[0].startswith("python"):  # the file's own usage line: keep what follows "...]: " on it
        about[0] = about[0].split("]: ", 1)[1] if "]: " in about[0] else ""
    out = [f"{command}: {' '.join(a for a in about if a)}", "",
           f"usage: {command} [group=option ...] [key=value ...]   (-m: a sweep over comma-separated values; "
           "--cfg job: print the composed config; --hydra-help: Hydra's options)", "",
           "Config groups (group=option; * the default):"]
    for group, chosen in choices.items():
        folder = conf / group
        if not folder.is_dir():
            continue
        out.append(f"  {group}:")
        for option in sorted(folder.glob("*.yaml")):
            mark = "*" if option.stem == chosen else " "
            out.append(f"   {mark}{option.stem:<12} {header(option)}")
    top_comments = {}
    for path in primary:
        for key, comment in key_comments(path).items():
            top_comments.setdefault(key, comment)
    out += ["", "Settings (key=value; the defaults shown, with their comments):"]
    for key, value in flat(OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])):
        group = key.split(".")[0]
        comment = top_comments.get(key)
        if comment is None and group in choices and choices[group]:
            comment = key_comments(conf / group / f"{choices[group]}.yaml").get(key.split(".", 1)[1] if "." in key else key)
        out.append(f"  {key}={value}" + (f"    # {comment}" if comment else ""))
    return "\n".join(out)
