"""Dataset manifests: the one JSONL format every labelled photo set is read through.

The format is documented in ``datasets/README.md``. Torch-free, so serving installs can
validate manifests and export reviewed labels as one. The modules import one way only:
``types`` <- ``read`` <- ``write`` <- ``importers``; this package re-exports their API.
"""

from vision.manifest.importers import ELPV_GRADES, import_elpv, import_folder, split_counts
from vision.manifest.read import inspect_manifest, load_manifest, sniff_image, validate_manifest
from vision.manifest.types import (
    FORMAT_VERSION,
    KIND,
    REQUIRED_SPLITS,
    SPLITS,
    Manifest,
    ManifestHeader,
    ManifestRecord,
    Problem,
)
from vision.manifest.write import merge_manifests, write_manifest

__all__ = [
    "ELPV_GRADES",
    "FORMAT_VERSION",
    "KIND",
    "REQUIRED_SPLITS",
    "SPLITS",
    "Manifest",
    "ManifestHeader",
    "ManifestRecord",
    "Problem",
    "import_elpv",
    "import_folder",
    "inspect_manifest",
    "load_manifest",
    "merge_manifests",
    "sniff_image",
    "split_counts",
    "validate_manifest",
    "write_manifest",
]
