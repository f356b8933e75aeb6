"""Output files written atomically, never clobbering the user's data without --overwrite.

    check_writable([out_png, out_json], overwrite=False)   # before doing any work
    atomic_write_bytes(path, data, overwrite=False)         # temp file in the same folder + rename
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from knet.errors import KnetError


def check_writable(paths: Iterable[str | os.PathLike], *, overwrite: bool) -> None:
    """Raise KnetError naming the first existing path when overwrite is False."""
    if overwrite:
        return
    for p in paths:
        if Path(p).exists():
            raise KnetError(f"{p} exists; pass --overwrite to replace it")


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool) -> Path:
    """Write `data` to `path` through a temporary file and an atomic rename."""
    path = Path(path)
    check_writable([path], overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not overwrite and path.exists():  # appeared while we were writing
            raise KnetError(f"{path} exists; pass --overwrite to replace it")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, overwrite: bool, indent: int | None = None) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n", overwrite=overwrite)


def read_json(path: str | os.PathLike, *, what: str = "JSON file") -> Any:
    """Load JSON, turning a missing file or malformed content into a one-line KnetError."""
    path = Path(path)
    if not path.is_file():
        raise KnetError(f"{what} not found: {path}")
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KnetError(f"{what} {path} is not valid JSON ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
