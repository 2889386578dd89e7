"""Every module of clm sits in a layer of the import contracts.

The contracts themselves (pyproject.toml, ``[tool.importlinter]``) are checked
by ``lint-imports`` in make lint and make test. The four layers are subpackages
of clm, so a module belongs to a layer by where it lives; this test keeps the
layout and the contracts exhaustive, so a new module cannot slip past them.
"""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path
from typing import Any

import clm

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["app", "ml", "data", "core"]  # top to bottom


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return list(config["contracts"])


def _contract(container: str) -> dict[str, Any]:
    (found,) = [c for c in _contracts() if c.get("containers") == [container]]
    return found


def _names(layer: str) -> set[str]:
    return {m.strip() for m in layer.replace("|", ":").split(":")}


def _modules(package: str) -> set[str]:
    """The direct children (modules and subpackages) of a package under clm."""
    path = ROOT / package.replace(".", "/")
    return {info.name for info in pkgutil.iter_modules([str(path)])}


def test_the_four_layers_are_the_subpackages_of_clm() -> None:
    assert _contract("clm")["layers"] == LAYERS
    children = _modules("clm")
    assert children - {"config"} == set(LAYERS), "a module of clm must live in one of its layers"
    walked = {i.name for i in pkgutil.walk_packages(clm.__path__, prefix="clm.")}
    assert all(any(m.startswith(f"clm.{layer}") for layer in LAYERS) for m in walked)


def test_the_sub_layers_place_every_module() -> None:
    for container in ("clm.data", "clm.app"):
        layers = [_names(layer) for layer in _contract(container)["layers"]]
        placed = set().union(*layers)
        assert placed == _modules(container), (container, placed ^ _modules(container))
        for i, upper in enumerate(layers):
            for lower in layers[i + 1 :]:
                assert not upper & lower


def test_the_shell_is_on_top_and_the_core_at_the_bottom() -> None:
    app = _contract("clm.app")["layers"]
    assert app[0] == "cli"
    data = [_names(layer) for layer in _contract("clm.data")["layers"]]
    # the building blocks, over the one scorer they share (review sentiment)
    assert {"validation", "warehouse", "features"} <= data[-2]
    assert data[-1] == {"sentiment"}
