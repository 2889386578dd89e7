"""Every module of clm and training sits in a layer of the import contract.

The contract itself (pyproject.toml, ``[tool.importlinter]``) is checked by
``lint-imports`` in make lint and make test; this test keeps it exhaustive, so
a new module cannot slip past it unplaced.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import clm
import training

ROOT = Path(__file__).resolve().parents[2]


def _layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [{m.strip() for m in layer.replace("|", ":").split(":")} for layer in contract["layers"]]


def _modules() -> set[str]:
    found = set()
    for package in (clm, training):
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            found.add(info.name)
    return found


def test_every_module_has_a_layer() -> None:
    layers = _layers()
    placed = set().union(*layers)
    unplaced = {m for m in _modules() if not any(m == p or m.startswith(f"{p}.") for p in placed)}
    assert not unplaced, f"add to a layer in pyproject.toml: {sorted(unplaced)}"


def test_no_module_sits_in_two_layers() -> None:
    layers = _layers()
    for i, upper in enumerate(layers):
        for lower in layers[i + 1 :]:
            assert not upper & lower


def test_the_shell_is_on_top_and_the_core_at_the_bottom() -> None:
    layers = _layers()
    assert {"clm.cli", "clm.tasks", "clm.runner"} <= layers[0]
    assert "training" in layers[1]
    assert {"clm.settings", "clm.io"} <= layers[-1]
