"""``returnlens model fit-drift-reference``: store a drift reference in a model's card.

The reference (``vision/drift.py``) summarises the model's outputs and the photos'
quality measures on a manifest split (val by default) as histograms; the service tests
its latest stored photos against it (``returnlens drift``, ``GET /v1/admin/drift``,
``returnlens_drift_*`` metrics). Torch-free: the fit runs the ONNX file through
``vision`` (``vision/drift_fit.py``). Registered under ``returnlens model`` by
``training/cli_model.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(msub: Any) -> None:  # the `model` command's subparsers
    fd = msub.add_parser(
        "fit-drift-reference",
        help="store the drift reference (histograms on a manifest split) in a model's card",
        description="Grade the manifest split's photos with the model (the serving path: "
        "decode, quality measures, ONNX Runtime) and store the histograms of grades, "
        "damage labels, unfamiliarity, abstain rate, brightness, sharpness and long side, "
        "with the estimated and measured accuracy, in the card as drift_reference. The "
        "graph stays identical. Torch-free.",
    )
    fd.add_argument("--model", required=True, type=Path, help="the .onnx file")
    fd.add_argument("--data", required=True, type=Path, help="in-distribution manifest (JSONL)")
    fd.add_argument("--out", required=True, type=Path, help="output .onnx path (may be --model)")
    fd.add_argument("--split", default="val", choices=("train", "val", "test"))
    fd.add_argument("--max-photos", type=int, default=2000, help="photos used at most")
    fd.set_defaults(handler=_fit_drift_reference)


def _fit_drift_reference(args: argparse.Namespace) -> int:
    from vision.drift_fit import reference_from_manifest, write_drift_reference
    from vision.errors import ModelError
    from vision.manifest import load_manifest

    if not args.model.is_file():
        raise ModelError(f"model file {args.model} does not exist", code="model_not_found")
    ref = reference_from_manifest(
        args.model, load_manifest(args.data), split=args.split, max_photos=args.max_photos
    )
    out = write_drift_reference(args.model, ref, args.out)
    acc = ref["accuracy"]
    print(
        f"wrote {out}: drift reference on {ref['photos']} {args.split} photo(s), "
        f"{len(ref['signals'])} signals; estimated accuracy {ref['estimated_accuracy']:.3f}"
        + (f", measured {acc:.3f}" if acc is not None else "")
    )
    return 0
