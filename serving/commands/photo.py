"""Photo subcommands: ``check-photo`` (the quality gate on files) and ``grade``.

``register()`` adds one parser per command through a small table, so another command
(``grade``) is one more entry in ``_COMMANDS``. Handlers import the vision core lazily.

Exit status of ``check-photo``: 0 when every photo passes the gate, 1 when at least one
photo must be retaken, 2 when at least one file could not be read or decoded (each such
file gets one line on stderr naming it and the error code; the others are still checked).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vision.errors import ReturnLensError

EXIT_PASS, EXIT_RETAKE, EXIT_UNREADABLE = 0, 1, 2


def _add_check_photo(sub: Any) -> None:
    parser = sub.add_parser(
        "check-photo",
        help="run the photo-quality gate on photo files",
        description="Decode each photo (JPEG, PNG or WebP, sniffed from its bytes) and run "
        "the quality gate: blur, exposure, glare, resolution, item coverage and cut-off. "
        "Exit status: 0 all pass, 1 some photo must be retaken, 2 some file is unreadable.",
    )
    parser.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="photo files")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    parser.add_argument(
        "--profile",
        choices=("shopper", "dock"),
        default="shopper",
        help="threshold profile (default: shopper; dock is looser)",
    )
    parser.set_defaults(handler=check_photo)


# One entry per subcommand; register() adds them all.
_COMMANDS: tuple[Callable[[Any], None], ...] = (_add_check_photo,)


def register(sub: Any) -> None:  # argparse._SubParsersAction
    for add in _COMMANDS:
        add(sub)


def read_photo_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, or a ReturnLensError with a code; never reads past the limit."""
    try:
        if not path.exists():
            raise ReturnLensError("No such file.", code="file_not_found")
        if not path.is_file():
            raise ReturnLensError("Not a regular file.", code="not_a_file")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ReturnLensError(
            f"The file cannot be read ({exc.strerror or exc}).", code="unreadable_file"
        ) from exc
    return data


def _check_one(path: Path, profile: str) -> dict[str, Any]:
    from vision.decode import DecodeLimits, decode_image
    from vision.quality import assess_quality

    limits = DecodeLimits()
    data = read_photo_file(path, limits.max_bytes)
    photo = decode_image(data, limits=limits)
    report = assess_quality(photo, profile=profile)
    return {
        "path": str(path),
        "passed": report.passed,
        "format": photo.format,
        "width": photo.original_width,
        "height": photo.original_height,
        "sha256": photo.sha256,
        "quality": report.to_dict(),
    }


def _print_text(result: dict[str, Any]) -> None:
    quality = result["quality"]
    verdict = "PASS" if result["passed"] else "RETAKE"
    print(
        f"{result['path']}: {verdict} ({quality['profile']} profile, "
        f"{result['width']} x {result['height']} {result['format']})"
    )
    for c in quality["checks"]:
        bound = f"{'>=' if c['direction'] == 'min' else '<='} {c['threshold']:g}"
        mark = "ok  " if c["passed"] else "FAIL"
        line = f"  {mark} {c['name']:<13} {c['value']:>9.4g}  (needs {bound})"
        print(line + (f"  {c['message']}" if c["message"] else ""))


def check_photo(args: argparse.Namespace) -> int:
    """Gate each photo; unreadable files are reported and skipped, never a traceback."""
    results: list[dict[str, Any]] = []
    status = EXIT_PASS
    for path in args.photos:
        try:
            result = _check_one(path, args.profile)
        except ReturnLensError as exc:
            print(f"error: {path}: {exc.message} [{exc.code}]", file=sys.stderr)
            results.append({"path": str(path), "passed": None, "error": exc.to_dict()})
            status = EXIT_UNREADABLE
            continue
        results.append(result)
        if not result["passed"]:
            status = max(status, EXIT_RETAKE)
        if not args.json:
            _print_text(result)
    if args.json:
        print(json.dumps(results, indent=2))
    return status


def _add_grade(sub: Any) -> None:
    parser = sub.add_parser(
        "grade",
        help="grade photo files offline with the shipped (or a given) model",
        description="Run the same chain as the service (decode, quality gate, model) on "
        "photo files, with no server. By default each photo is graded on its own; --item "
        "treats all the photos as views of one item (worst view wins). Each photo shows its "
        "unfamiliarity score and whether it is familiar to the model; each graded item "
        "shows whether the product would abstain (a person grades it) and why.",
    )
    parser.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="photo files")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--item", action="store_true", help="aggregate all photos as one item")
    parser.add_argument("--model", type=Path, help="ONNX model file (default: promoted/shipped)")
    parser.add_argument("--model-version", help="a version from the model registry")
    parser.add_argument("--profile", choices=("shopper", "dock"), default="shopper")
    parser.set_defaults(handler=grade)


_COMMANDS = (*_COMMANDS, _add_grade)


def _item_dict(item: Any) -> dict[str, Any]:
    return {
        "grade": item.grade,
        "confidence": round(item.confidence, 4),
        "expected_grade": round(item.expected_grade, 4),
        "grade_probs": {k: round(v, 4) for k, v in item.grade_dict().items()},
        "damage_probs": {k: round(v, 4) for k, v in item.damage_dict().items()},
    }


def _abstention(item: Any) -> dict[str, Any]:
    """Whether the product would abstain on this item's grade, and the policy's sentence.

    The service's shopper and dock policies abstain (review, no automatic decision) when
    a photo is unfamiliar or the model has no unfamiliarity score; the sentence is the
    policy's own flag message, so the CLI and the service say the same thing. ``None``
    for both when no photo passed the gate: there is no grade to abstain on, only a
    retake.
    """
    if item is None:
        return {"abstain": None, "abstain_reason": None}
    from serving.policy.trust import familiarity
    from serving.policy.types import Scores

    flags = familiarity(Scores.from_item_scores(item))
    return {"abstain": bool(flags), "abstain_reason": flags[0].message if flags else None}


def _familiarity(scores: Any) -> dict[str, Any]:
    """One photo's unfamiliarity score and verdict (null: the model has no score)."""
    u = scores.unfamiliarity
    return {"unfamiliarity": None if u is None else round(u, 4), "familiar": scores.familiar}


def _print_grade(entry: dict[str, Any]) -> None:
    if "error" in entry:
        return
    scores = entry.get("scores")
    quality = (
        "quality ok"
        if entry["quality"]["passed"]
        else "RETAKE: "
        + "; ".join(c["message"] for c in entry["quality"]["checks"] if not c["passed"])
    )
    if scores is None:
        print(f"{entry['path']}: no usable photo ({quality})")
        return
    damage = [f"{k} {v:.2f}" for k, v in scores["damage_probs"].items() if v >= 0.5]
    u = entry.get("unfamiliarity")
    seen = "" if u is None else f"; unfamiliarity {u:.2f}"
    print(
        f"{entry['path']}: {scores['grade']} ({scores['confidence']:.0%}); "
        f"damage: {', '.join(damage) or 'none'}; {quality}{seen}"
    )
    if entry.get("abstain"):
        print(f"  ABSTAIN: {entry['abstain_reason']}")


def grade(args: argparse.Namespace) -> int:
    """Grade files offline; unreadable files are reported and skipped, never a traceback."""
    from serving.settings import Settings
    from vision.aggregate import aggregate
    from vision.pipeline import Grader

    settings = Settings(model_path=args.model, model_version=args.model_version)
    grader = Grader.load(
        settings.resolve_model_path(), profile=args.profile, intra_op_threads=settings.ort_threads
    )
    card = grader.card
    status = EXIT_PASS
    decoded: list[tuple[Path, Any]] = []
    entries: list[dict[str, Any]] = []
    for path in args.photos:
        try:
            decoded.append((path, grader.decode(read_photo_file(path, grader.limits.max_bytes))))
        except ReturnLensError as exc:
            print(f"error: {path}: {exc.message} [{exc.code}]", file=sys.stderr)
            entries.append({"path": str(path), "error": exc.to_dict()})
            status = EXIT_UNREADABLE
    groups = [decoded] if args.item else [[d] for d in decoded]
    for group in (g for g in groups if g):
        result = grader.grade_decoded([photo for _, photo in group])
        for (path, _), graded in zip(group, result.photos, strict=True):
            single = aggregate([graded.scores], card.grade_labels, card.damage_labels)
            passed = graded.quality.passed
            entries.append(
                {
                    "path": str(path),
                    "quality": graded.quality.to_dict(),
                    "scores": _item_dict(single) if passed else None,
                    **_familiarity(graded.scores),
                    **_abstention(single if passed else None),
                }
            )
        if args.item:
            entries.append(
                {
                    "path": "item",
                    "quality": {"passed": result.item is not None, "checks": []},
                    "scores": _item_dict(result.item) if result.item else None,
                    "familiar": None if result.item is None else result.item.familiar,
                    **_abstention(result.item),
                }
            )
    if args.json:
        print(json.dumps({"model_version": card.model_version, "results": entries}, indent=2))
    else:
        print(f"model {card.model_version} ({card.backbone})")
        if not grader.model.has_unfamiliarity:
            print(
                "note: this model has no unfamiliarity score, so it cannot tell photos it "
                "has never seen from familiar ones; every grade is an abstention"
            )
        for entry in entries:
            _print_grade(entry)
    return status
