"""The one progress bar: tqdm on stderr, shown only when stderr is a terminal and not quiet.

    bar = progress_bar(total=len(paths), unit="img", quiet=quiet)   # None when hidden
    if bar is not None: bar.update(1)

Batch jobs redirect stderr to files; a bar there is noise, so it is hidden (stdout stays clean
for machine-readable lines in any case).
"""

from __future__ import annotations

import sys


def progress_bar(*, total: int, quiet: bool = False, unit: str = "it", desc: str | None = None, initial: int = 0, min_total: int = 2):
    """A tqdm bar writing to stderr, or None when quiet, when stderr is not a TTY, or when total < min_total."""
    if quiet or total < min_total or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, unit=unit, dynamic_ncols=True, leave=False)
