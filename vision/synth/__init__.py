"""Synthetic returns generator: procedurally rendered photos of returned items.

Pure numpy + OpenCV (no torch), so it runs in a serving install and in CI.

Public API (stable):

- ``GRADE_LABELS``, ``DAMAGE_LABELS``, ``CATEGORIES``, ``BAD_KINDS``: the label sets the
  generator writes into its manifest header (``labels.py``).
- ``grade_for(packaging, damage) -> str``: the documented grade rule (``labels.py``).
- ``SkuSpec``, ``catalog_skus(seed, skus_per_category=4) -> list[SkuSpec]``:
  deterministic catalog (``catalog.py``).
- ``ItemState``, ``sample_state(sku, grade, rng) -> ItemState``: packaging + damage with
  severities for one physical item (``state.py``).
- ``RenderedItem``, ``render_item(sku, state, rng, size) -> RenderedItem``: RGBA cut-out
  plus damage-mask bitfield, for compositing into any scene, e.g. a dock table
  (``render.py``).
- ``render_photo(sku, state, rng, size, *, background=None, bad=None) -> (rgb, mask)``
  and ``render_reference(sku, size) -> rgb`` (``scene.py``).
- ``SynthConfig``, ``generate_dataset(out_dir, config, *, workers=2, progress=True)
  -> manifest path`` (``dataset.py``); ``write_contact_sheet(manifest, out_path)``
  (``contact.py``).

Output folder: ``manifest.jsonl`` (header + one record per photo, see
datasets/README.md), ``images/NNNNNN.jpg``, ``masks/NNNNNN.png`` (uint8, bit i =
DAMAGE_LABELS[i]), ``catalog.jsonl`` + ``catalog/<sku>.jpg``, ``synth_config.json``,
and ``contact_sheet.png`` from the CLI.
"""

from vision.synth.catalog import SkuSpec, catalog_skus
from vision.synth.contact import write_contact_sheet
from vision.synth.dataset import SynthConfig, generate_dataset
from vision.synth.labels import BAD_KINDS, CATEGORIES, DAMAGE_LABELS, GRADE_LABELS, grade_for
from vision.synth.render import RenderedItem, render_item
from vision.synth.scene import render_photo, render_reference
from vision.synth.state import ItemState, sample_state

__all__ = [
    "BAD_KINDS",
    "CATEGORIES",
    "DAMAGE_LABELS",
    "GRADE_LABELS",
    "ItemState",
    "RenderedItem",
    "SkuSpec",
    "SynthConfig",
    "catalog_skus",
    "generate_dataset",
    "grade_for",
    "render_item",
    "render_photo",
    "render_reference",
    "sample_state",
    "write_contact_sheet",
]
