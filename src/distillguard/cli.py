"""The ``distillguard`` command line.

Each module in :mod:`distillguard.commands` exposes ``register(app)`` and adds
its own sub-commands, so stages stay independent. Command modules import heavy
libraries inside the command body to keep ``--help`` fast.
"""
from __future__ import annotations

import importlib
import pkgutil

import typer

from distillguard import commands
from distillguard.errors import exit_with

app = typer.Typer(
    name="distillguard",
    help="Detect and stop distillation campaigns against language-model APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)


_register_commands()


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2."""
    exit_with(lambda: app(standalone_mode=True), "distillguard")


if __name__ == "__main__":
    main()
