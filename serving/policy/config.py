"""The policy YAML: schema, loading with clear errors, the content-hash version.

One file holds the whole policy. ``defaults`` is a complete category policy; each entry of
``categories`` overrides it by deep merge (mappings merge key by key, lists and scalars
replace). A ``default`` category is used for categories the file does not name; when the
file has none it equals ``defaults``.

Every error names its YAML path (``categories.mug.return_window_days: must be > 0``). An
error inside a merged category is reported where the offending value was written: under
``categories.<name>`` when the override sets it, else under ``defaults``.

The version is ``pol-`` + 12 hex of the sha256 of the canonical JSON of the *resolved*
policy (every category merged, every default filled in), so comments, formatting, key
order and spelling out a default leave it unchanged, while any effective change moves it.

``confidence.min_grade_confidence`` and ``wrong_item.min_similarity`` may be left out (or
``null``): the model card's suggestion is then used (``serving.policy.thresholds``).
``load_policy`` fills in the fallbacks; ``Policy.for_model`` re-resolves against a card.
The version hashes the *effective* values, so a retrained model whose card suggests
another threshold gives another version; where a value came from is not hashed (like a
spelled-out default, the same number from another source decides the same way).

Grade and damage names are data: the file names them, and ``Policy.fitted_to`` rewrites
the policy in a model's own label lists (``serving.policy.fit``: grades by ``grade_map``,
name or rank; rule parts naming damage labels the model lacks skipped and listed). The
service fits it at start-up; the engine fits again, cached, on every decision.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from serving.policy.explain import Issue, issues_from
from serving.policy.fit import ModelFit
from serving.policy.resolution import ResolutionRule
from serving.policy.thresholds import (
    FALLBACK,
    EffectiveThreshold,
    apply_thresholds,
    resolve_thresholds,
    without_null_thresholds,
    written_thresholds,
)
from serving.policy.types import REASON_CODES, ReasonCode
from serving.policy.views import Views, unique_names
from vision.errors import ConfigError

DEFAULT_CATEGORY = "default"
POLICY_FORMAT = 1

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Name = Annotated[str, Field(min_length=1)]
CategoryKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class ConditionRule(_Model):
    """Non-returnable condition: for these reasons, this grade mass or damage is refused.

    It matches when P(grade in ``grades``) >= ``min_prob`` or any ``damage`` label reaches
    the upper edge of the uncertain band. ``reject`` is downgraded to review when the model
    is not confident (the engine never refuses a shopper on a guess).
    """

    reasons: list[ReasonCode] | None = None  # None: every reason
    grades: list[Name] = []
    min_prob: Fraction = 0.5
    damage: list[Name] = []
    action: Literal["reject", "review"] = "review"
    note: str | None = None  # the shopper sentence when it rejects

    @model_validator(mode="after")
    def _has_condition(self) -> ConditionRule:
        if not self.grades and not self.damage:
            raise ValueError("a condition needs 'grades' or 'damage' (or both)")
        return self


class Channel(_Model):
    """A secondary sales channel: fixed handling cost and the markdown it sells at."""

    cost: Annotated[float, Field(ge=0.0)]
    markdown: float | Literal["tier"]  # "tier": the grade's tier markdown (expected value)
    grades: list[Name] | None = None  # grades it accepts; None: all; []: channel disabled

    @field_validator("markdown", mode="before")
    @classmethod
    def _markdown(cls, value: object) -> object:
        if value == "tier":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError("must be a fraction between 0 and 1, or 'tier'")
        return float(value)


class Dock(_Model):
    tiers: Annotated[dict[Name, Fraction], Field(min_length=1)]  # tier -> markdown fraction
    grade_tiers: Annotated[dict[Name, Name], Field(min_length=1)]  # grade -> tier
    channels: Annotated[dict[Name, Channel], Field(min_length=1)]

    @model_validator(mode="after")
    def _known_tiers(self) -> Dock:
        bad = [f"{g} -> {t}" for g, t in self.grade_tiers.items() if t not in self.tiers]
        if bad:
            raise ValueError(
                f"grade_tiers names unknown tiers ({', '.join(bad)}); tiers are: "
                f"{', '.join(self.tiers)}"
            )
        return self


class CategoryPolicy(_Model):
    return_window_days: Annotated[int, Field(gt=0)]
    returnable: bool = True
    non_returnable_reasons: list[ReasonCode] = []
    high_value: Annotated[float, Field(gt=0)] | None = None  # None: no high-value review
    non_returnable: list[ConditionRule] = []
    dock: Dock
    # Refund, store credit, exchange or keep-it (serving.policy.resolution); None: a
    # refund on receipt. Left out of the resolved text when None, so a policy without
    # it keeps the version it had before it existed.
    resolution: ResolutionRule | None = None
    # Guided capture (serving.policy.views): the views the shopper photographs, one at a
    # time; None: any photos. Left out of the resolved text when None, like resolution.
    views: Views | None = None

    @field_validator("views")
    @classmethod
    def _unique_views(cls, value: Views | None) -> Views | None:
        if value:
            unique_names(value)
        return value

    def unset_optional(self) -> set[str]:
        """The optional rules left out (None): not hashed, so adding one kept versions."""
        return {k for k in ("resolution", "views") if getattr(self, k) is None}


class DamageBand(_Model):
    low: Fraction
    high: Fraction

    @model_validator(mode="after")
    def _ordered(self) -> DamageBand:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class Confidence(_Model):
    # Absent or null: the model card's auto_approve_confidence (serving.policy.thresholds).
    min_grade_confidence: Fraction = FALLBACK["confidence.min_grade_confidence"]
    dock_min_grade_confidence: Fraction | None = None  # None: same as min_grade_confidence
    damage_uncertain: DamageBand


class Condition(_Model):
    damaged_from_grade: Name  # this grade and worse count as visible damage
    pristine_grades: Annotated[list[Name], Field(min_length=1)]
    min_prob: Fraction = 0.5
    ignore_damage: list[Name] = []  # damage labels that do not count (opened packaging)


class ReasonRule(_Model):
    expects: Literal["intact", "damaged", "different_item", "any"] = "any"
    on_mismatch: Literal["review", "note"] = "review"


class WrongItem(_Model):
    """The wrong-item check, and what happens when it cannot run.

    ``no_reference``: the effect of ``no_reference_photo`` (the SKU has no catalog
    reference photo, so nothing to compare with). ``review`` sends the item to a person,
    at the shopper and at the dock (which then holds it instead of routing it); ``note``
    only tells the reviewer. A skipped check is never silent.
    """

    # Absent or null: the model card's wrong_item_similarity (serving.policy.thresholds).
    min_similarity: Annotated[float, Field(ge=-1.0, le=1.0)] = FALLBACK["wrong_item.min_similarity"]
    no_reference: Literal["review", "note"] = "review"


class ReusedPhotoRule(_Model):
    """A photo of another return: pHash within ``max_hamming`` bits (exact and near-exact
    copies), or an edited copy: copy-detection agreement >= ``min_agreement`` (the share
    of the overlap that agrees once the photos are aligned, ``vision.copydetect``; chosen
    by benchmarks/copy_detection.py)."""

    max_hamming: Annotated[int, Field(ge=0, le=64)]
    min_agreement: Annotated[float, Field(ge=0.5, le=1.0)] = 0.8


class CatalogPhotoRule(_Model):
    """An upload that is (an edited copy of) a catalog reference photo, of this SKU or
    another: copy-detection agreement >= ``min_agreement``, as for ``reused_photo``."""

    min_agreement: Annotated[float, Field(ge=0.5, le=1.0)] = 0.8
    effect: Literal["review", "note"] = "review"


class RepeatReturner(_Model):
    window_days: Annotated[int, Field(gt=0)]
    min_returns: Annotated[int, Field(ge=1)]  # counting this return
    min_rejected: Annotated[int, Field(ge=1)] | None = None


class Quality(_Model):
    min_usable_photos: Annotated[int, Field(ge=1, le=6)] = 1
    max_retakes: Annotated[int, Field(ge=0)] = 3  # after this many, review instead


class Discrepancy(_Model):
    min_grade_gap: Annotated[int, Field(ge=1)]
    action: Literal["review", "note"] = "review"


class PolicyFile(_Model):
    policy_format: Literal[1]
    name: Name
    description: str = ""
    confidence: Confidence
    condition: Condition
    reasons: dict[ReasonCode, ReasonRule] = {}
    wrong_item: WrongItem = WrongItem()
    reused_photo: ReusedPhotoRule
    catalog_photo: CatalogPhotoRule = CatalogPhotoRule()
    repeat_returner: RepeatReturner
    quality: Quality = Quality()
    discrepancy: Discrepancy
    # Model grade -> policy grade, for a model whose grades are not the policy's
    # (serving.policy.fit); unlisted grades match by name, else by ordinal rank.
    grade_map: dict[Name, Name] = {}
    defaults: CategoryPolicy
    categories: dict[CategoryKey, dict[str, Any]] = {}

    @field_validator("categories", mode="before")
    @classmethod
    def _empty_overrides(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value


@dataclass(frozen=True)
class Policy:
    """A validated, resolved policy and its content-hash version."""

    spec: PolicyFile
    categories: Mapping[str, CategoryPolicy]  # resolved; always holds "default"
    reasons: Mapping[str, ReasonRule]  # every reason code
    version: str
    source: str
    overrides: Mapping[str, Mapping[str, Any]] = field(repr=False, compare=False)
    raw_defaults: Mapping[str, Any] = field(repr=False, compare=False)
    _compatible: set[tuple[tuple[str, ...], tuple[str, ...]]] = field(
        default_factory=set, repr=False, compare=False
    )
    # The card-driven thresholds in effect, with their sources; and what the YAML wrote
    # for them (None: left to the model card), kept so a policy can be re-resolved.
    thresholds: Mapping[str, EffectiveThreshold] = field(default_factory=dict, compare=False)
    written_thresholds: Mapping[str, float | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    # Set on a policy fitted to a model's labels (``fitted_to``): how, and the policy it
    # was fitted from (fitting always starts there, so it can be redone for other labels).
    fit: ModelFit | None = field(default=None, compare=False)
    unfitted: Policy | None = field(default=None, repr=False, compare=False)
    _fitted: dict[tuple[tuple[str, ...], tuple[str, ...]], Policy] = field(
        default_factory=dict, repr=False, compare=False
    )

    def for_model(self, card_thresholds: Mapping[str, float] | None) -> Policy:
        """This policy with the model card's suggestions where the YAML left them out.

        Values in, policy out: the caller passes ``ModelCard.thresholds``. The version is
        recomputed from the effective values; label compatibility does not depend on
        them, so what was checked stays checked.
        """
        effective = resolve_thresholds(self.written_thresholds, card_thresholds)
        spec = apply_thresholds(self.spec, effective)
        version = policy_version(_resolved(spec, self.categories, self.reasons, self.fit))
        return replace(
            self,
            spec=spec,
            version=version,
            thresholds=effective,
            _compatible=set(self._compatible),
            _fitted={},
        )

    def fitted_to(self, grade_labels: Sequence[str], damage_labels: Sequence[str]) -> Policy:
        """This policy in a model's own grade and damage names (``serving.policy.fit``).

        Raises ConfigError (``policy_model_mismatch``) when it cannot be fitted. Cached
        per label lists; a policy already fitted to these labels is returned as is, and
        one fitted to other labels is refitted from the policy it came from, keeping this
        one's thresholds. When the model's grades are the policy's and it has every
        damage label named, the result decides and hashes exactly like this policy.
        """
        from serving.policy.fit import fit_policy

        key = (tuple(grade_labels), tuple(damage_labels))
        if self.fit is not None and (self.fit.grade_labels, self.fit.damage_labels) == key:
            return self
        if key in self._fitted:
            return self._fitted[key]
        base = self.unfitted or self
        spec0 = apply_thresholds(base.spec, self.thresholds)
        spec, categories, fit = fit_policy(base, spec0, key[0], key[1])
        same = fit.identity and spec == spec0 and categories == dict(base.categories)
        out = replace(
            base,
            spec=spec,
            categories=categories,
            version=policy_version(
                _resolved(spec, categories, base.reasons, None if same else fit)
            ),
            thresholds=self.thresholds,
            written_thresholds=self.written_thresholds,
            fit=None if same else fit,
            unfitted=None if same else base,
            _compatible=set(),
            _fitted={},
        )
        self._fitted[key] = out
        return out

    def grade_rank(self, grade: str, grade_labels: Sequence[str]) -> int:
        """A model grade's place on the policy's ladder (fitted), else in the model's list."""
        if self.fit is not None and grade in self.fit.mapping:
            return self.fit.rank(grade)
        return list(grade_labels).index(grade)

    def category(self, name: str) -> tuple[str, CategoryPolicy]:
        """The policy for a category (case-insensitive); unknown ones get ``default``."""
        key = name.strip().lower()
        key = key if key in self.categories else DEFAULT_CATEGORY
        return key, self.categories[key]

    def resolved(self) -> dict[str, Any]:
        """The canonical content the version hashes."""
        return _resolved(self.spec, self.categories, self.reasons, self.fit)

    def require_compatible(self, grade_labels: Sequence[str], damage_labels: Sequence[str]) -> None:
        """Raise ConfigError unless the policy can be fitted to these labels."""
        key = (tuple(grade_labels), tuple(damage_labels))
        if key not in self._compatible:
            self.fitted_to(key[0], key[1])
            self._compatible.add(key)

    def summary(self) -> list[str]:
        lines = [
            f"policy {self.spec.name!r} (format {self.spec.policy_format}), version {self.version}",
            f"source: {self.source}",
            f"categories: {', '.join(sorted(self.categories))} "
            f"(unknown categories use {DEFAULT_CATEGORY!r})",
            f"grades named: {', '.join(sorted(grade_names(self)))}",
            f"damage labels named: {', '.join(sorted(damage_names(self))) or '-'}",
        ]
        for name in sorted(self.categories):
            cat = self.categories[name]
            usable = [c for c, ch in cat.dock.channels.items() if ch.grades != []]
            lines.append(
                f"  {name}: {'returnable' if cat.returnable else 'NOT returnable'}, "
                f"window {cat.return_window_days} d, high value "
                f"{cat.high_value if cat.high_value is not None else '-'}, "
                f"{len(cat.non_returnable)} condition rule(s), channels {', '.join(usable)}"
                + (f", views {', '.join(v.name for v in cat.views)}" if cat.views else "")
            )
        return lines


def _resolved(
    spec: PolicyFile,
    categories: Mapping[str, CategoryPolicy],
    reasons: Mapping[str, ReasonRule],
    fit: ModelFit | None = None,
) -> dict[str, Any]:
    """The canonical content; ``grade_map`` and the fitted grade mapping only when present,
    so a policy without them keeps the version it had before they existed."""
    data = spec.model_dump(mode="json", exclude={"defaults", "categories", "reasons", "grade_map"})
    if spec.grade_map:
        data["grade_map"] = dict(spec.grade_map)
    if fit is not None:
        data["grade_fit"] = fit.as_dict()
    data["reasons"] = {k: r.model_dump(mode="json") for k, r in reasons.items()}
    data["categories"] = {
        k: c.model_dump(mode="json", exclude=c.unset_optional() or None)
        for k, c in categories.items()
    }
    return data


def policy_version(resolved: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return "pol-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


# --- loading -------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool):
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def default_policy_path() -> Path:
    return Path(str(resources.files("serving.policy").joinpath("default.yaml")))


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file (the shipped ``default.yaml`` when None)."""
    path = Path(path) if path is not None else default_policy_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"policy file {path} does not exist", details={"file": str(path)}
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"policy file {path} cannot be read: {exc}", details={"file": str(path)}
        ) from exc
    return parse_policy(text, source=str(path))


def parse_policy(text: str, source: str = "<string>") -> Policy:
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise ConfigError(
            f"policy file {source} is not valid YAML at line {line}, column {column}: "
            f"{exc.problem or exc.context}",
            details={"file": source, "line": line, "column": column},
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"policy file {source} is not valid YAML: {exc}", details={"file": source}
        ) from exc
    if data is None:
        raise ConfigError(f"policy file {source} is empty", details={"file": source})
    if not isinstance(data, dict):
        raise ConfigError(
            f"policy file {source} must be a YAML mapping with policy_format, name, ...; "
            f"it holds {type(data).__name__}",
            details={"file": source},
        )
    return policy_from_dict(data, source=source)


def policy_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Policy:
    """A policy from a YAML mapping, or from a stored resolved text (``Policy.resolved``),
    which may record the model fit it was made with (``grade_fit``): that policy is
    rebuilt already fitted, with the version it was stored under."""
    data = without_null_thresholds(data)
    stored_fit = data.pop("grade_fit", None)
    issues: list[Issue] = []
    spec: PolicyFile | None = None
    try:
        spec = PolicyFile.model_validate(dict(data))
    except ValidationError as exc:
        issues += issues_from(exc, PolicyFile, lambda loc: _path(loc), POLICY_FORMAT)
    raw_defaults: Any = data.get("defaults")
    raw_categories = data.get("categories") or {}
    categories: dict[str, CategoryPolicy] = {}
    overrides: dict[str, Mapping[str, Any]] = {}
    if isinstance(raw_defaults, dict) and isinstance(raw_categories, dict):
        names = [str(k) for k in raw_categories]
        names += [DEFAULT_CATEGORY] if DEFAULT_CATEGORY not in names else []
        for name in names:
            override = raw_categories.get(name) or {}
            if not isinstance(override, dict):
                continue  # reported by PolicyFile
            overrides[name] = override
            try:
                categories[name] = CategoryPolicy.model_validate(_merge(raw_defaults, override))
            except ValidationError as exc:
                issues += issues_from(
                    exc, CategoryPolicy, origin_fn(name, override, raw_defaults), POLICY_FORMAT
                )
    if issues or spec is None:
        _raise(source, issues)
    assert spec is not None
    given = {str(k): v for k, v in spec.reasons.items()}
    reasons = {code: given.get(code, ReasonRule()) for code in REASON_CODES}
    written = written_thresholds(data)
    effective = resolve_thresholds(written)  # no model yet: policy values or fallbacks
    spec = apply_thresholds(spec, effective)
    fit: ModelFit | None = None
    if stored_fit is not None:
        try:
            fit = ModelFit.from_dict(stored_fit)
        except ValueError as exc:
            _raise(source, [Issue("grade_fit", str(exc))])
    version = policy_version(_resolved(spec, categories, reasons, fit))
    return Policy(
        spec,
        categories,
        reasons,
        version,
        source,
        overrides,
        dict(raw_defaults),
        thresholds=effective,
        written_thresholds=written,
        fit=fit,
    )


def _raise(source: str, issues: Iterable[Issue]) -> None:
    unique = list(dict.fromkeys(issues))
    lines = "\n".join(f"  {i}" for i in unique)
    raise ConfigError(
        f"policy file {source} has {len(unique)} error(s):\n{lines}",
        details={
            "file": source,
            "errors": [{"path": i.path, "message": i.message} for i in unique],
        },
    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _prefix_len(data: Any, keys: Sequence[Any]) -> int:
    depth = 0
    for part in keys:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_dict or in_list):
            break
        data = data[part]
        depth += 1
    return depth


def origin_fn(name: str, override: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    """Map an error location inside a merged category to the YAML path that wrote it.

    Whichever of the override and ``defaults`` reaches deeper along the location wrote the
    value (the override wins ties); a key missing from both is reported under defaults.
    """

    def origin(loc: Sequence[Any]) -> str:
        keys = [p for p in loc if p != "[key]"]
        mine, base = _prefix_len(override, keys), _prefix_len(defaults, keys)
        if mine and mine >= base:
            return _path(("categories", name, *loc))
        return _path(("defaults", *loc))

    return origin


def _path(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# --- label compatibility -------------------------------------------------------------


def grade_names(policy: Policy) -> set[str]:
    """Every grade name the policy refers to."""
    names = {policy.spec.condition.damaged_from_grade, *policy.spec.condition.pristine_grades}
    for cat in policy.categories.values():
        names |= set(cat.dock.grade_tiers)
        names |= {g for rule in cat.non_returnable for g in rule.grades}
        names |= {g for ch in cat.dock.channels.values() for g in ch.grades or ()}
    return names


def damage_names(policy: Policy) -> set[str]:
    names = set(policy.spec.condition.ignore_damage)
    for cat in policy.categories.values():
        names |= {d for rule in cat.non_returnable for d in rule.damage}
    return names


def check_compatible(
    policy: Policy, grade_labels: Sequence[str], damage_labels: Sequence[str]
) -> Policy:
    """The policy fitted to these labels (``serving.policy.fit``), or ConfigError listing
    every problem with its YAML path.

    A model grade the policy does not name matches a policy grade by ``grade_map`` or
    ordinal rank; a rule part naming a damage label the model lacks is skipped and
    listed in the result's ``fit.skipped``. Every model grade needs a markdown tier and
    a channel in every category.
    """
    return policy.fitted_to(grade_labels, damage_labels)
