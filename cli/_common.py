"""Shared CLI plumbing: the error-catching group class and small helpers for commands."""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from knet.errors import KnetError


class KnetGroup(TyperGroup):
    """Catches KnetError once for the whole command tree: one line on stderr, non-zero exit."""

    def invoke(self, ctx):  # ctx: typer's click Context
        try:
            return super().invoke(ctx)
        except KnetError as exc:
            if os.environ.get("KNET_DEBUG") == "1":
                raise
            typer.echo(f"knet: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            typer.echo("knet: interrupted", err=True)
            ctx.exit(130)


def new_app(help_text: str, **kwargs) -> typer.Typer:
    """A typer sub-app with knet's conventions (error catching, no pretty tracebacks)."""
    return typer.Typer(
        help=help_text,
        cls=KnetGroup,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        **kwargs,
    )


def echo_err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
