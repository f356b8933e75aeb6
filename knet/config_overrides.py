"""`key=value` overrides for dataclass configs, validated against the fields.

    cfg = apply_overrides(cfg, ["optim.lr=2e-4", "train.max_iters=100"])

Nested dataclasses are addressed with dots. Values are parsed by the field's type (bool, int,
float, str, tuples/lists of those, Optional[...]); an unknown key fails with a close-match hint:
`unknown config key 'optim.lrr' (did you mean 'optim.lr'?)`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from typing import Any

from knet.errors import KnetError


def flatten_fields(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """All leaf keys of a (nested) dataclass instance, dotted, with their current values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(flatten_fields(value, key + "."))
        else:
            out[key] = value
    return out


def _parse_scalar(text: str, typ: Any, key: str) -> Any:
    if typ is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise KnetError(f"config key '{key}' takes true/false, got '{text}'")
    if typ is float:
        try:
            return float(text)
        except ValueError:
            raise KnetError(f"config key '{key}' takes a number, got '{text}'") from None
    if typ is int:
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        if not number.is_integer():
            raise KnetError(f"config key '{key}' takes an integer, got '{text}'")
        return int(number)
    if typ is str:
        return text
    raise KnetError(f"config key '{key}' has type {typ} that cannot be set from the command line")


def _parse_value(text: str, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if text.strip().lower() in ("none", "null") and len(non_none) < len(args):
            return None
        return _parse_value(text, non_none[0], key)
    if typing.get_origin(typ) is typing.Literal:
        if text not in [str(a) for a in args]:
            raise KnetError(f"config key '{key}' takes one of {', '.join(map(str, args))}, got '{text}'")
        return next(a for a in args if str(a) == text)
    if origin in (tuple, list):
        raw = text.strip()
        try:
            items = json.loads(raw) if raw.startswith("[") else [s for s in raw.strip("()").split(",") if s.strip()]
        except json.JSONDecodeError:
            raise KnetError(f"config key '{key}' takes a list like 1,2,3, got '{text}'") from None
        elem = args[0] if args else str
        parsed = [_parse_value(str(i), elem, key) for i in items]
        return tuple(parsed) if origin is tuple else parsed
    return _parse_scalar(text, typ, key)


def apply_overrides(cfg: Any, overrides: list[str] | tuple[str, ...]) -> Any:
    """Return a copy of `cfg` with each `key=value` applied; raises KnetError on a bad key/value."""
    known = flatten_fields(cfg)
    for item in overrides:
        if "=" not in item:
            raise KnetError(f"override '{item}' is not of the form key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in known:
            hint = difflib.get_close_matches(key, list(known), n=1)
            tail = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise KnetError(f"unknown config key '{key}'{tail}")
        *parents, leaf = key.split(".")
        owner_path: list[Any] = [cfg]
        for p in parents:
            owner_path.append(getattr(owner_path[-1], p))
        hints = typing.get_type_hints(type(owner_path[-1]))
        value = _parse_value(text, hints[leaf], key)
        # rebuild the chain of frozen-or-not dataclasses bottom-up
        new = dataclasses.replace(owner_path[-1], **{leaf: value})
        for obj, name in zip(reversed(owner_path[:-1]), reversed(parents)):
            new = dataclasses.replace(obj, **{name: new})
        cfg = new
        known = flatten_fields(cfg)
    return cfg
