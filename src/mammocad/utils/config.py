"""Typed configs: dataclasses whose every field is both a YAML key and a CLI flag.

A command's configuration is one or more flat dataclasses. Values come from, lowest
priority first: the dataclass defaults, a YAML file (``--config FILE``), and the flags the
user typed. :func:`click_options` derives the flags from the fields (``crop_top`` becomes
``--crop-top``; a field's ``metadata["help"]`` is its help text), so the two can never
drift apart, and :func:`build_configs` merges the three sources with type checks.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, Callable

import click
import yaml

from mammocad.utils.errors import DataError


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(underlying type, optional?) for ``X``, ``X | None`` and ``Optional[X]``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, where: str) -> Any:
    base, optional = _base_type(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ValueError(f"{where}: a value is required")
    if typing.get_origin(base) is tuple:
        return _coerce_tuple(value, base, where)
    try:
        if base is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if base is Path:
            return Path(value)
        if isinstance(base, type) and issubclass(base, enum.Enum):
            return base(value)
        if base in (int, float, str):
            if base is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return base(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a valid {getattr(base, '__name__', base)}") from None
    return value


def _coerce_tuple(value: Any, tp: Any, where: str) -> tuple:
    """``tuple[int, int]`` fields: a YAML list or the values of a multi-value flag."""
    item_types = typing.get_args(tp)
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or len(value) != len(item_types):
        raise ValueError(f"{where}: expected {len(item_types)} values, got {value!r}")
    return tuple(_coerce(v, t, where) for v, t in zip(value, item_types))


WORKERS_RULE = "must be 0 or more (0: work in this process)"


def check_workers(value: int | None, name: str = "workers") -> int | None:
    """The one check of a worker count, for every command: an int >= 0, or None (automatic).

    Raises ValueError naming ``name`` (a field or a flag). Use it in a config's
    ``__post_init__`` (YAML and flags alike) or, for a plain click option, through
    :func:`workers_callback`.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} {WORKERS_RULE}, got {value!r}")
    return value


def workers_callback(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """click ``callback=`` of a ``--workers`` option: :func:`check_workers` as a usage error."""
    try:
        return check_workers(value, (param.opts or [str(param.name)])[0])
    except ValueError as err:
        raise click.UsageError(str(err), ctx) from None


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def click_options(*classes: type) -> Callable[[Callable], Callable]:
    """Decorator adding one click option per dataclass field (default ``None`` = not given)."""

    def decorate(fn: Callable) -> Callable:
        for cls in reversed(classes):
            hints = _field_types(cls)
            for f in reversed(dataclasses.fields(cls)):
                base, _ = _base_type(hints[f.name])
                default = f.default if f.default is not dataclasses.MISSING else None
                help_text = f.metadata.get("help", "")
                if default is not None:  # a None default is described by the help text ("none: ...")
                    help_text = f"{help_text} [default: {default.value if isinstance(default, enum.Enum) else default}]"
                if base is bool:
                    fn = click.option(
                        f"{flag_name(f.name)}/--no-{f.name.replace('_', '-')}", f.name, default=None, help=help_text
                    )(fn)
                    continue
                if typing.get_origin(base) is tuple:  # e.g. --patch-size 224 224
                    item_types = typing.get_args(base)
                    fn = click.option(flag_name(f.name), f.name, type=item_types[0], nargs=len(item_types),
                                      default=None, help=help_text)(fn)
                    continue
                if isinstance(base, type) and issubclass(base, enum.Enum):
                    click_type: Any = click.Choice([e.value for e in base])
                elif base in (int, float):
                    click_type = base
                else:
                    click_type = str
                fn = click.option(flag_name(f.name), f.name, type=click_type, default=None, help=help_text)(fn)
        return fn

    return decorate


def read_yaml(yaml_path: str | Path | None) -> dict[str, Any]:
    """The option: value mapping of a config file (``{}`` for ``None``); dashes in keys become underscores."""
    if yaml_path is None:
        return {}
    path = Path(yaml_path)
    if not path.is_file():
        raise DataError(path, "config file not found")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise DataError(path, f"not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise DataError(path, "config must be a YAML mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in loaded.items()}


def build_configs(classes: tuple[type, ...], yaml_path: str | Path | None, flags: dict[str, Any],
                  base: dict[str, Any] | None = None, base_name: str = "recipe") -> tuple[Any, ...]:
    """Instances of ``classes`` from defaults < ``base`` (a named recipe's values) < YAML file < flags
    that were given (not None).

    A YAML key that belongs to none of the classes is an error naming the file, so a typo
    never silently falls back to a default. Keys of ``base`` that belong to none of the classes
    are left out (a recipe may carry another command's settings); ``base_name`` names it in errors.
    """
    base = base or {}
    from_yaml = read_yaml(yaml_path)
    if yaml_path is not None:
        path = Path(yaml_path)
        known = {f.name for cls in classes for f in dataclasses.fields(cls)}
        unknown = sorted(set(from_yaml) - known)
        if unknown:
            raise DataError(path, f"unknown config keys {unknown}; known: {sorted(known)}")
    out = []
    for cls in classes:
        hints = _field_types(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if flags.get(f.name) is not None:
                kwargs[f.name] = _coerce(flags[f.name], hints[f.name], flag_name(f.name))
            elif f.name in from_yaml:
                kwargs[f.name] = _coerce(from_yaml[f.name], hints[f.name], f"{yaml_path}: {f.name}")
            elif f.name in base:
                kwargs[f.name] = _coerce(base[f.name], hints[f.name], f"{base_name}: {f.name}")
        out.append(cls(**kwargs))
    return tuple(out)


def config_dict(*configs: Any) -> dict[str, Any]:
    """Flat YAML-ready mapping of one or more configs (paths and enums as strings)."""
    out: dict[str, Any] = {}
    for cfg in configs:
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):  # YAML has lists, not tuples
                value = list(value)
            out[f.name] = value
    return out


def dump_yaml(*configs: Any) -> str:
    return yaml.safe_dump(config_dict(*configs), sort_keys=False)
