"""Model configs as frozen dataclasses, and one generic pair that turns them into JSON-able dicts and back.

Every model holds a frozen config (``RBMConfig``, ``DAEConfig``, ``DBNConfig``, ``SDAEConfig``,
``ClassifierConfig``), validated on creation, that names everything needed to rebuild it but its weights:
sizes, unit types, corruption and parameter dtype. :func:`config_to_dict` and :func:`config_from_dict` work
from the dataclass fields and their type hints, so no model writes its own dict:

- a nested config (``DAEConfig.corruption``) becomes a nested dict, a ``tuple[...]`` a list;
- a field declared with ``init=False`` (a stack's ``kind``) is written, and on reading it must hold its
  default when present: it tags the dict with the kind of model it describes;
- reading refuses unknown fields and missing required ones, and names where in the dict the error is.

Field types are checked by :func:`check_field_types`, which every config calls first in ``__post_init__``, so
a config built in code is held to the same rules as one read from a file.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

import torch

from unitlens.errors import UnitlensError

# Parameter dtypes a config can name. float32 is the default everywhere; float64 costs about 2x.
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}

C = TypeVar("C")


def dtype_name(dtype: torch.dtype) -> str:
    """The config name of a parameter dtype: ``"float32"`` or ``"float64"``.

    Raises:
        UnitlensError: any other dtype.
    """
    for name, value in DTYPES.items():
        if dtype == value:
            return name
    raise UnitlensError(
        f"model dtype must be one of {sorted(DTYPES)} (torch.float32, torch.float64), got {dtype}"
    )


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of the config class ``cls`` (cached: resolving them is slow)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _describe(hint: Any) -> str:
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if hint is bool:
        return "true or false"
    if typing.get_origin(hint) is tuple:
        return f"a list of {_describe(typing.get_args(hint)[0]).removeprefix('a ').removeprefix('an ')}s"
    return f"a {getattr(hint, '__name__', hint)}"


def _has_type(hint: Any, value: object) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"config fields support tuple[X, ...] only, got {hint}")
        return isinstance(value, tuple) and all(_has_type(args[0], v) for v in value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    raise TypeError(f"unsupported config field type {hint!r}")


def check_field_types(config: object) -> None:
    """Refuse a config whose fields do not hold their annotated types (``int`` refuses ``bool`` and
    ``float``; ``float`` takes ints too; ``tuple[X, ...]`` must be a tuple of X; a nested config must be an
    instance of its class).

    Raises:
        UnitlensError: naming the first wrong field, e.g. ``RBMConfig.n_hidden must be an integer, got '5'``.
    """
    cls = type(config)
    hints = _hints(cls)
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value, hint = getattr(config, f.name), hints[f.name]
        if not _has_type(hint, value):
            raise UnitlensError(f"{cls.__name__}.{f.name} must be {_describe(hint)}, got {value!r}")


def check_positive(config: object, *names: str) -> None:
    """Refuse integer fields ``names`` of ``config`` that are < 1."""
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise UnitlensError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}")


def check_choice(config: object, name: str, choices: tuple[str, ...]) -> None:
    """Refuse a string field ``name`` of ``config`` that is not one of ``choices``."""
    value = getattr(config, name)
    if value not in choices:
        raise UnitlensError(f"{type(config).__name__}.{name} must be one of {choices}, got {value!r}")


def _to_json(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    return value


def config_to_dict(config: object) -> dict[str, Any]:
    """A JSON-able dict of every field of the config dataclass ``config`` (nested configs as dicts, tuples
    as lists, ``init=False`` tags such as ``kind`` included). :func:`config_from_dict` inverts it exactly."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise UnitlensError(f"expected a config dataclass, got {type(config).__name__}")
    return {f.name: _to_json(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _structure(hint: Any, value: object, where: str) -> object:
    """``value`` read from JSON, with nested dicts made configs and lists made tuples, as ``hint`` says."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else config_from_dict(hint, value, where=where)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list | tuple):
            raise UnitlensError(f"{where} must be {_describe(hint)}, got {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_structure(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    return value  # scalars: checked by the config's own __post_init__


def config_from_dict(cls: type[C], data: object, *, where: str | None = None) -> C:
    """The config of class ``cls`` described by ``data`` (a dict from :func:`config_to_dict` or a file).

    Missing fields that have defaults take them (so a dict written before a field existed still reads);
    unknown fields are refused, and so is an ``init=False`` tag holding another value than its default.

    Args:
        cls: a frozen config dataclass.
        data: the dict.
        where: how error messages name the dict (e.g. ``"model_config.layers[1]"``); the class name if None.

    Raises:
        UnitlensError: ``data`` is not a dict, has unknown or missing fields, or a field is invalid.
    """
    name = where if where is not None else cls.__name__
    if not isinstance(data, dict):
        raise UnitlensError(f"{name} must be a table/dict of fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(key) for key in data if key not in fields)
    if unknown:
        raise UnitlensError(f"{name} has unknown fields {unknown}; expected fields {sorted(fields)}")
    for f in fields.values():
        if not f.init and f.name in data and data[f.name] != f.default:
            raise UnitlensError(f"{name}.{f.name} is {data[f.name]!r}, expected {f.default!r}")
    required = [
        f.name
        for f in fields.values()
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [key for key in required if key not in data]
    if missing:
        raise UnitlensError(f"{name} is missing required fields {missing}")
    hints = _hints(cls)
    kwargs = {
        key: _structure(hints[key], value, f"{name}.{key}") for key, value in data.items() if fields[key].init
    }
    try:
        return cls(**kwargs)
    except UnitlensError as exc:
        if where is None:  # the message already names the class
            raise
        raise UnitlensError(f"{where}: {exc}") from exc


def as_config(cls: type[C], config: object, *, where: str | None = None) -> C:
    """``config`` itself when it is a ``cls``, else :func:`config_from_dict` of it: what every model's
    ``from_config`` accepts (the dataclass or its dict)."""
    return config if isinstance(config, cls) else config_from_dict(cls, config, where=where)


class ConfiguredLayer(typing.Generic[C]):
    """The config accessors an RBM and a DAE share: both hold ``_cfg`` (an ``RBMConfig`` or ``DAEConfig``,
    with ``n_visible``, ``n_hidden`` and ``dtype``) and a ``weight`` of shape (H, V)."""

    _cfg: C
    weight: torch.nn.Parameter

    @property
    def cfg(self) -> C:
        """This layer's config; its ``dtype`` is the parameters' (it follows ``.double()`` and the like)."""
        name = dtype_name(self.weight.dtype)
        if name == self._cfg.dtype:  # type: ignore[attr-defined]
            return self._cfg
        return dataclasses.replace(self._cfg, dtype=name)  # type: ignore[type-var]

    @property
    def n_visible(self) -> int:
        """Visible units (inputs) V."""
        return int(self._cfg.n_visible)  # type: ignore[attr-defined]

    @property
    def n_hidden(self) -> int:
        """Hidden units H."""
        return int(self._cfg.n_hidden)  # type: ignore[attr-defined]

    def config(self) -> dict[str, Any]:
        """The JSON-able config (weights not included): :attr:`cfg` as a dict."""
        return config_to_dict(self.cfg)
