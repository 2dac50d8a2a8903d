"""The subcommand registry and the argument checks subcommands share.

:mod:`fer_lib.cli` builds the parser from :data:`SUBCOMMANDS`; a module defining a command imports
this module (never ``fer_lib.cli``), so no command module and the command line import each other.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable

CHECKPOINT_CHOICES = ("best_val", "last")  # the checkpoints a run keeps, for --which
Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], Handler]


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    configure: Configure


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(name: str, help: str) -> Callable[[Configure], Configure]:
    """Register ``configure(parser) -> handler``: it adds its arguments and returns ``handler(args) -> exit code``."""

    def wrap(configure: Configure) -> Configure:
        SUBCOMMANDS[name] = Subcommand(name, help, configure)
        return configure

    return wrap


def check_device(device: str | None) -> None:
    """Raise ConfigError for a ``--device`` torch does not know, or ``cuda`` on a machine without CUDA."""
    import torch

    from fer_lib.engine.recipes import ConfigError

    if device is None:
        return
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ConfigError(f"--device {device!r} is not a torch device; use cpu or cuda (cuda:1 for the second GPU)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}); "
                          "use --device cpu")
