"""The model registry: versioned ONNX artefacts and their cards in a models directory.

Layout (plain files, so operators can inspect and back it up with ordinary tools)::

    models/<version>/model.onnx        the fp32 model (its card is inside)
    models/<version>/model.int8.onnx   optional int8 variant
    models/<version>/card.json         a copy of the card, readable without ONNX
    models/PROMOTED                    {"version", "promoted_at", "by", ...}: what serving loads
    models/promotions.jsonl            one line per change of champion (append-only audit):
                                       action, version, previous, at, by, reason, forced,
                                       comparison

Torch-free: serving resolves the model to load through :meth:`ModelRegistry.resolve`.
Every write goes to a temporary name first and is renamed into place, so a crash never
leaves a half-copied model where serving could load it. A version becomes champion only
after ONNX Runtime has loaded it (:meth:`ModelRegistry.promote` checks), and the switch is
one rename of ``PROMOTED``: serving sees the old champion or the new one, never neither.

The shipped default model is the registry's first version (:meth:`ensure_shipped`): it
is *copied* in under its card version, not referenced, because a package upgrade
replaces the shipped file, and a version must keep meaning the same bytes (rollback and
stored decisions rely on it).
"""

from __future__ import annotations

import builtins
import getpass
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vision.card import CARD_KEY, ModelCard
from vision.errors import ModelError
from vision.fsio import atomic_copy, atomic_write_text

MODELS_DIR_ENV = "RETURNLENS_MODELS_DIR"
PROMOTED_FILE = "PROMOTED"
PROMOTIONS_LOG = "promotions.jsonl"
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
CARD_FILE = "card.json"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


def default_models_dir() -> Path:
    """``$RETURNLENS_MODELS_DIR`` or ``./models``, as the shared settings read it."""
    from vision.settings import SharedSettings

    return SharedSettings().models_dir


def card_of(onnx_path: Path) -> ModelCard:
    """Read the card from an ONNX file's metadata_props without starting a session."""
    import onnx  # here, not at import: `returnlens serve` resolves a path without it

    if not Path(onnx_path).is_file():
        raise ModelError(f"model file {onnx_path} does not exist", code="model_not_found")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError / protobuf errors
        raise ModelError(
            f"{onnx_path} is not a readable ONNX file: {exc}", code="invalid_model"
        ) from exc
    props = {p.key: p.value for p in model.metadata_props}
    if CARD_KEY not in props:
        raise ModelError(
            f"{onnx_path} has no {CARD_KEY!r} model card in metadata_props", code="invalid_model"
        )
    return ModelCard.from_json(props[CARD_KEY])


def write_card(path: Path, card: ModelCard) -> None:
    """Store the card JSON under ``metadata_props[returnlens_card]`` (replacing any)."""
    import onnx

    model = onnx.load(str(path))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != CARD_KEY]
    del model.metadata_props[:]
    for key, value in [*kept, (CARD_KEY, card.to_json())]:
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    model.producer_name = "returnlens"
    onnx.save(model, str(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelEntry:
    version: str
    path: Path  # the fp32 model.onnx
    card: ModelCard
    int8_path: Path | None = None
    promoted: bool = False

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "backbone": self.card.backbone,
            "created_at": self.card.created_at,
            "accuracy": self.card.metrics.get("accuracy"),
            "promoted": self.promoted,
            "path": str(self.path),
            "int8_path": str(self.int8_path) if self.int8_path else None,
        }


class ModelRegistry:
    """A models directory; cheap to construct, reads the disk on every call."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else default_models_dir()

    # ------------------------------------------------------------------ reading

    def _promoted_version(self) -> str | None:
        path = self.root / PROMOTED_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
            return str(data["version"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"{path} is not a valid promotion record ({exc}); promote a "
                "version again to rewrite it",
                code="invalid_registry",
            ) from exc

    def _entry(self, version: str, promoted: str | None) -> ModelEntry | None:
        folder = self.root / version
        model, card_file = folder / MODEL_FILE, folder / CARD_FILE
        if not model.is_file():
            return None
        try:
            card = ModelCard.from_json(card_file.read_text())
        except OSError:
            card = card_of(model)  # card.json lost: the ONNX file is the source of truth
        int8 = folder / INT8_FILE
        return ModelEntry(
            version, model, card, int8 if int8.is_file() else None, promoted == version
        )

    def list(self) -> list[ModelEntry]:
        """Every registered version, oldest first (by card created_at, then name)."""
        if not self.root.is_dir():
            return []
        promoted = self._promoted_version()
        entries = [
            e
            for d in sorted(self.root.iterdir())
            if d.is_dir()
            and not d.name.startswith(".")
            and (e := self._entry(d.name, promoted)) is not None
        ]
        return sorted(entries, key=lambda e: (e.card.created_at, e.version))

    def versions(self) -> builtins.list[str]:
        return [e.version for e in self.list()]

    def get(self, version: str) -> ModelEntry:
        entry = None
        if _VERSION_RE.match(version):
            entry = self._entry(version, self._promoted_version())
        if entry is None:
            known = self.versions()
            listing = ", ".join(known) if known else "none"
            raise ModelError(
                f"model version {version!r} is not in the registry at "
                f"{self.root} (available: {listing})",
                code="unknown_version",
            )
        return entry

    def promoted(self) -> ModelEntry | None:
        version = self._promoted_version()
        if version is None:
            return None
        entry = self._entry(version, version)
        if entry is None:
            raise ModelError(
                f"the promoted version {version!r} is missing from {self.root}; "
                "promote another version",
                code="unknown_version",
            )
        return entry

    def resolve(self, version: str | None = None, default: Path | None = None) -> Path:
        """The model file serving should load.

        An explicit version wins; otherwise the promoted version; otherwise ``default``
        (the packaged model the caller ships).
        """
        if version is not None:
            return self.get(version).path
        entry = self.promoted()
        if entry is not None:
            return entry.path
        if default is None:
            raise ModelError(
                f"no model is promoted in {self.root} and no default model was "
                "given; run 'returnlens model promote VERSION --reason WHY'",
                code="model_not_found",
            )
        return Path(default)

    # ------------------------------------------------------------------ writing

    def register(
        self,
        onnx_path: Path | str,
        *,
        version: str | None = None,
        int8_path: Path | str | None = None,
    ) -> ModelEntry:
        """Copy a model (and its int8 variant) into ``<root>/<version>/``.

        The version comes from the card unless given (it must then equal the card's, so
        decisions recorded with a version can always find their model). Re-registering
        the identical file is a no-op; a different file under an existing version is
        refused: versions are immutable.
        """
        src = Path(onnx_path)
        card = card_of(src)
        version = version or card.model_version
        if version != card.model_version:
            raise ModelError(
                f"version {version!r} differs from the card's model_version "
                f"{card.model_version!r}; export again with --version {version}",
                code="version_mismatch",
            )
        if not _VERSION_RE.match(version):
            raise ModelError(
                f"model version {version!r} must be 1-100 letters, digits, '.', '_', '+' or '-'",
                code="invalid_version",
            )
        folder = self.root / version
        dst = folder / MODEL_FILE
        if dst.is_file():
            if _sha256(dst) != _sha256(src):
                raise ModelError(
                    f"version {version!r} is already registered with a different "
                    "file; versions are immutable, export with a new --version",
                    code="version_exists",
                )
        else:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                atomic_copy(src, dst)
            except OSError as exc:
                raise ModelError(f"cannot write {dst}: {exc}", code="write_failed") from exc
        if int8_path is not None:
            self._register_int8(Path(int8_path), folder, card)
        atomic_write_text(folder / CARD_FILE, json.dumps(card.to_dict(), indent=2) + "\n")
        return self.get(version)

    def _register_int8(self, src: Path, folder: Path, card: ModelCard) -> None:
        int8_card = card_of(src)
        if int8_card.grade_labels != card.grade_labels or not int8_card.model_version.startswith(
            card.model_version
        ):
            raise ModelError(
                f"{src} is not the int8 variant of {card.model_version}", code="version_mismatch"
            )
        dst = folder / INT8_FILE
        if dst.is_file() and _sha256(dst) != _sha256(src):
            raise ModelError(
                f"version {card.model_version!r} already has a different int8 file",
                code="version_exists",
            )
        atomic_copy(src, dst)

    def check_loads(self, version: str) -> ModelEntry:
        """The entry, once ONNX Runtime has loaded it and its contract checked out."""
        from vision.model import OnnxModel  # onnxruntime: only when a model is switched

        entry = self.get(version)
        try:
            OnnxModel(entry.path, intra_op_threads=1)
        except ModelError as exc:
            raise ModelError(
                f"version {version!r} is refused: it does not load ({exc.message})",
                code="invalid_model",
            ) from exc
        return entry

    def promote(
        self,
        version: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        comparison: dict[str, Any] | None = None,
        forced: bool = False,
        action: str = "promote",
    ) -> ModelEntry:
        """Make ``version`` what serving loads (takes effect when serving reloads).

        The model is loaded first (a file that fails to load never becomes champion),
        then ``PROMOTED`` is replaced in one rename, then the change is appended to the
        promotions log with who, when, why and the comparison it passed (or overrode).
        """
        self.check_loads(version)  # also raises with the list of versions when unknown
        previous = self._promoted_version()
        record: dict[str, Any] = {
            "action": action,
            "version": version,
            "previous": previous,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "by": by or _user(),
            "reason": reason,
            "forced": forced,
        }
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.root / PROMOTED_FILE, json.dumps(record, indent=2) + "\n")
        except OSError as exc:
            raise ModelError(
                f"cannot write {self.root / PROMOTED_FILE}: {exc}", code="write_failed"
            ) from exc
        self._append_log({**record, "comparison": comparison})
        return self.get(version)

    def _append_log(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        path = self.root / PROMOTIONS_LOG
        try:
            with path.open("a", encoding="utf-8") as fh:
                fh.write(line)  # one write per record: lines never interleave
        except OSError as exc:
            raise ModelError(
                f"promoted, but cannot append to {path}: {exc}", code="write_failed"
            ) from exc

    def promotion_log(self) -> builtins.list[dict[str, Any]]:
        """Every recorded change of champion, oldest first."""
        path = self.root / PROMOTIONS_LOG
        if not path.is_file():
            return []
        out: builtins.list[dict[str, Any]] = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ModelError(
                    f"{path} line {n} is not JSON ({exc}); the promotions log is "
                    "append-only, restore it from a backup",
                    code="invalid_registry",
                ) from exc
            if isinstance(obj, dict) and isinstance(obj.get("version"), str):
                out.append(obj)
        return out

    def champion_history(self) -> builtins.list[str]:
        """The champions in force, oldest first: a promotion pushes, a rollback pops.

        The last element is the current champion; the one before it is what
        :meth:`rollback` returns to. A ``PROMOTED`` written without a log line (an
        older registry) counts as the current champion.
        """
        stack: builtins.list[str] = []
        for rec in self.promotion_log():
            if rec.get("action") == "rollback":
                if stack:
                    stack.pop()
                if not stack or stack[-1] != rec["version"]:
                    stack.append(rec["version"])
            elif not stack or stack[-1] != rec["version"]:
                stack.append(rec["version"])
        current = self._promoted_version()
        if current is not None and (not stack or stack[-1] != current):
            stack.append(current)
        return stack

    def rollback(self, *, by: str | None = None, reason: str | None = None) -> ModelEntry:
        """Return to the previous champion (it must still load)."""
        history = self.champion_history()
        if len(history) < 2:
            raise ModelError(
                f"there is no previous champion to roll back to in {self.root} "
                f"(champion: {history[-1] if history else 'none'})",
                code="no_previous_champion",
            )
        return self.promote(history[-2], by=by, reason=reason, action="rollback")

    def ensure_shipped(self, shipped: Path | str | None) -> ModelEntry | None:
        """Register the shipped default model (a copy, under its card version).

        With nothing promoted yet the shipped model *is* what serving runs, so it is
        recorded as the first champion; once something is promoted, a newly shipped
        version (a package upgrade) is only registered and waits for ``model promote``.
        A missing file (a development tree without the model) is skipped.
        """
        if shipped is None or not Path(shipped).is_file():
            return None
        version = card_of(Path(shipped)).model_version
        # Already registered: the copy is authoritative (versions are immutable).
        existing = self._entry(version, None) if _VERSION_RE.match(version) else None
        entry = existing or self.register(shipped)
        if self._promoted_version() is None and not self.promotion_log():
            entry = self.promote(
                entry.version,
                by="returnlens",
                reason="the shipped default model, registered as the first version",
                action="bootstrap",
            )
        return entry

    def promotion_record(self) -> dict[str, Any] | None:
        path = self.root / PROMOTED_FILE
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"
