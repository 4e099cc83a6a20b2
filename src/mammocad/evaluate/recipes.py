"""Named recipes: measured settings of ``train-classifier`` and ``cross-validate`` (``--recipe NAME``).

A recipe is a flat YAML file of ``TrainConfig`` and ``CrossValConfig`` keys, shipped as package data
in ``mammocad/configs/recipes/NAME.yaml``. It is the layer between the built-in defaults and
``--config`` / the flags, so each of its values can still be overridden. Every file's header says
on what data and evidence it was chosen (a section of ``benchmarks/RESULTS.md``) and which weights
file it expects. ``--recipe PATH`` reads a YAML file of the same form instead of a named one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mammocad.utils.config import read_yaml
from mammocad.utils.errors import DataError

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "recipes"


def recipe_names() -> list[str]:
    """The shipped recipes' names (file stems), sorted."""
    return sorted(path.stem for path in RECIPES.glob("*.yaml"))


def recipe_path(name: str | Path) -> Path:
    """The YAML file of a named recipe, or ``name`` itself when it is a path to one."""
    if (RECIPES / f"{name}.yaml").is_file():
        return RECIPES / f"{name}.yaml"
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    raise DataError(None, f"unknown recipe {str(name)!r}; named recipes: {', '.join(recipe_names()) or 'none'} "
                          f"(or give a YAML file)")


def load_recipe(name: str | Path) -> dict[str, Any]:
    """The key: value mapping of a recipe; DataError naming the file for a key that is neither a
    train-classifier nor a cross-validate option."""
    from mammocad.evaluate.config import CrossValConfig
    from mammocad.train.config import TrainConfig

    path = recipe_path(name)
    values = read_yaml(path)
    known = {f.name for cls in (TrainConfig, CrossValConfig) for f in dataclasses.fields(cls)}
    refused = sorted(set(values) - (known - {"data", "out"}))  # the data and the run folder are the user's
    if refused:
        raise DataError(path, f"a recipe holds train-classifier / cross-validate settings only; not allowed: {refused}")
    return values
