"""Fast, strict JSON reading for the evaluators (orjson), with one-line KnetErrors."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import orjson

from knet.errors import KnetError


def load_json(path: str | os.PathLike, *, what: str) -> Any:
    """Parse a JSON file; a missing file or malformed content raises KnetError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise KnetError(f"{what} not found: {path}")
    data = path.read_bytes()
    enabled = gc.isenabled()
    gc.disable()  # millions of fresh objects would trigger repeated, useless GC passes
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise KnetError(f"{what} {path} is not valid JSON ({str(exc).splitlines()[0]})") from None
    finally:
        if enabled:
            gc.enable()


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (NaN written as null)."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
