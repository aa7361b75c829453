"""The floors CI installs (.ci/floors.txt) are the lowest versions pyproject.toml allows, one for one, so that the
floors venv tests what pyproject promises (torch aside: see the file's header)."""
import re

import pytest

from conftest import REPO

tomllib = pytest.importorskip("tomllib", reason="tomllib is Python 3.11's")


def test_ci_floors_are_pyprojects_floors():
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = dict(re.match(r"([\w-]+)>=([\w.]+)", d).groups() for d in dependencies if ">=" in d)
    pinned = dict(line.split("==") for line in (REPO / ".ci" / "floors.txt").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert floors.pop("torch") == "2.4"
    assert {name: floors[name] for name in pinned} == {name: version.removesuffix(".0") for name, version in pinned.items()}
    assert set(floors) == set(pinned)
