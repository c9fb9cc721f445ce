"""Typed configuration: nested dataclasses read from YAML files and ``key=value`` overrides.

A configuration is a tree of dataclasses (``maskx.model.config.ModelConfig``,
``maskx.engine.config.RunConfig``). ``from_dict`` builds one from plain data (a parsed
YAML file, or the dict a checkpoint carries) and checks every value against the field's
type, so a typo or a bad value fails up front with the dotted key that is wrong and, for
an unknown key, the nearest valid one. ``to_dict`` turns a configuration back into plain
data (what checkpoints store and runs write next to their output).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names the dotted key."""


def to_dict(config) -> dict:
    """Plain data (dicts, lists, scalars) of a configuration dataclass."""
    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return plain(config)


def _nearest(key: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(candidates)}"


def _describe(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(v) for v in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if origin in (tuple, list):
        return f"a list of {_describe(typing.get_args(annotation)[0])}"
    if origin is dict:
        return f"a mapping of names to {_describe(typing.get_args(annotation)[1])}"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _convert(annotation, value, key: str):
    """``value`` as the type ``annotation`` describes, or ConfigError naming ``key``."""
    origin = typing.get_origin(annotation)
    bad = ConfigError(f"{key}: expected {_describe(annotation)}, got {value!r}")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping of {annotation.__name__} settings, got {value!r}")
        return _build(annotation, value, key)
    if origin is Literal:
        for choice in typing.get_args(annotation):
            if value == choice and type(value) is type(choice):
                return choice
        raise bad
    if origin in (Union, types.UnionType):
        for option in typing.get_args(annotation):
            try:
                return _convert(option, value, key)
            except ConfigError:
                continue
        raise bad
    if origin in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise bad
        item = typing.get_args(annotation)[0]
        items = [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad
        item = typing.get_args(annotation)[1]
        return {str(k): _convert(item, v, f"{key}.{k}") for k, v in value.items()}
    if annotation is type(None):
        if value is not None:
            raise bad
        return None
    if annotation is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"{key}: unsupported configuration type {annotation!r}")


def _build(cls: type[T], data: Mapping, prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    values = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"unknown key {dotted!r}{_nearest(str(key), names)}")
        values[key] = _convert(hints[key], value, dotted)
    try:
        config = cls(**values)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None
    check = getattr(config, "check", None)
    if check is not None:
        try:
            check()
        except ConfigError as exc:
            raise ConfigError(f"{prefix}.{exc}" if prefix else str(exc)) from None
    return config


def from_dict(cls: type[T], data: Mapping, prefix: str = "") -> T:
    """Build ``cls`` from plain data, checking every key and value.

    Missing keys take the dataclass defaults. A dataclass may define ``check()`` for
    constraints between fields; it raises ``ConfigError`` with a message that starts
    with the field's name (the caller prefixes the path).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {type(data).__name__}")
    return _build(cls, data, prefix)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> (``["a", "b", "c"]``, value parsed as YAML: 0.01, true, [1, 2])."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected KEY=VALUE with a dotted KEY, e.g. solver.lr=0.01")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({exc})") from None
    return key.split("."), value


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """A copy of ``data`` with each ``KEY=VALUE`` override set (nested dicts created as needed).

    Keys are checked later, by ``from_dict``, against the dataclass they end up in.
    """
    data = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(path[:i + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return data


def load_yaml(path: str | os.PathLike) -> dict:
    """A YAML file's top-level mapping, with errors that name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def write_yaml(data: Mapping, path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(dict(data), f, sort_keys=False)
