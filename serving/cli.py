"""The one console script, ``returnlens``.

Each area registers its own subcommands (``register(subparsers)``); handlers import
their heavy dependencies lazily so ``returnlens serve`` never imports torch. Domain
errors become one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from vision.errors import ReturnLensError

# Modules exposing ``register(subparsers: argparse._SubParsersAction) -> None``.
COMMAND_MODULES = (
    "serving.commands.photo",  # check-photo, grade
    "training.synth.cli",  # synth
    "training.cli_dataset",  # dataset validate | import-folder | export-reviewed
    "training.cli",  # train
    "training.cli_model",  # evaluate, export, model list|show|promote
    "serving.commands.service",  # serve
    "serving.commands.policy",  # policy check
    "serving.commands.dock",  # dock, dock-sim
    "serving.commands.bench",  # bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="returnlens",
        description="Grade returned items from photos: shopper decisions, dock disposition, "
        "training and evaluation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except ReturnLensError as exc:
        print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
