"""The one error type for user mistakes (bad path, corrupt file, unknown key, ...).

Library code raises KnetError with a one-line message that names the offending thing; the CLI
catches it once and prints `knet: error: <message>` with a non-zero exit, never a traceback.
"""

from __future__ import annotations


class KnetError(Exception):
    """A user-facing error: the message is one line and names the file, key or value at fault."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message.strip().splitlines()[0] if message.strip() else message)
        if exit_code is not None:
            self.exit_code = exit_code
