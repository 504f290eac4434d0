"""A policy fitted to one model's own label lists: any model the pipeline trains can serve.

The policy names grades and damage labels; a model brings its own lists in its card. A
model trained on an imported ImageFolder tree may have two grades (``ok``, ``damaged``)
and no damage labels at all, so the policy cannot simply refuse every name it does not
know: it translates itself into the model's names, and says what it did.

Grades. The policy's grade ladder is ``defaults.dock.grade_tiers`` in written order,
best first (the model card lists its grades best first too). Each model grade ``m``
stands for one policy grade, found in this order:

1. ``grade_map: {m: policy_grade}`` in the policy file (explicit, always wins);
2. the same name, when ``m`` is one of the policy's grades;
3. its ordinal rank: model grade ``i`` of ``M`` stands for policy grade
   ``round(i * (P - 1) / (M - 1))`` of ``P`` (the best for the best, the worst for the
   worst, the rest interpolated).

Grades are ordinal, so a mapping that lists a worse model grade as a better policy grade
than the one before it is refused (unless every grade matched by name, which keeps the
model's own order as it always did). Every rule is then rewritten in model grades: a
tier, channel or condition rule that names policy grade ``g`` names the model grades that
stand for ``g``; ``condition.damaged_from_grade`` becomes the best model grade at or
below it. Discrepancies at the dock are measured on the policy's ladder, so a two-grade
model's ``ok -> damaged`` is as far apart as ``A_new -> E_damaged``.

Damage labels cannot be guessed. A rule part that names a damage label the model lacks
is skipped, and reported (a rule with nothing left to test is skipped whole); so is an
``ignore_damage`` entry. What remains an error: a ``grade_map`` naming a grade the policy
does not have, a policy grade name outside the ladder, a model grade left without a tier
or a channel, and a fit that leaves no model grade counting as damaged.

Pure: values in, values out. ``Policy.fitted_to`` calls ``fit_policy`` (cached per label
lists); the service does it once at start-up, and the engine again (cached) on every
decision, so a decision's ``policy_version`` is always the fitted one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from serving.policy.explain import Issue
from vision.errors import ConfigError

if TYPE_CHECKING:
    from serving.policy.config import (
        CategoryPolicy,
        Condition,
        ConditionRule,
        Dock,
        Policy,
        PolicyFile,
    )

How = Literal["same name", "grade_map", "rank", "stored"]  # stored: read back from a text
Origin = Callable[[Sequence[Any]], str]


@dataclass(frozen=True)
class GradeMatch:
    """One model grade and the policy grade it stands for, with how it was matched."""

    model_grade: str
    policy_grade: str
    how: How
    rank: int  # the policy grade's index on the ladder (0 = best)

    def line(self) -> str:
        return f"{self.model_grade} -> {self.policy_grade} ({self.how})"


@dataclass(frozen=True)
class ModelFit:
    """How a policy was fitted to a model's labels: the grade mapping and what was skipped.

    ``skipped`` lists every rule part the model cannot serve, by YAML path: a warning at
    start-up and in ``returnlens policy check --model``, never a silent change.
    """

    grade_labels: tuple[str, ...]
    damage_labels: tuple[str, ...]
    ladder: tuple[str, ...]  # the policy's grades, best first
    grades: tuple[GradeMatch, ...]
    skipped: tuple[Issue, ...]

    @property
    def mapping(self) -> dict[str, str]:
        return {g.model_grade: g.policy_grade for g in self.grades}

    @property
    def identity(self) -> bool:
        """The model's grades are the policy's, in order, and nothing was skipped."""
        return self.grade_labels == self.ladder and not self.skipped

    def rank(self, model_grade: str) -> int:
        return next(g.rank for g in self.grades if g.model_grade == model_grade)

    def as_dict(self) -> dict[str, Any]:
        """What the version hashes, and what a stored policy text keeps so it rebuilds
        (``from_dict``). Lists, not mappings: the canonical JSON sorts keys, and the
        model's grade order is part of the fit. How a grade was matched is not hashed:
        the same mapping decides the same way however it was found."""
        return {
            "ladder": list(self.ladder),
            "grades": [[g.model_grade, g.policy_grade] for g in self.grades],
            "damage_labels": list(self.damage_labels),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ModelFit:
        """The fit a stored policy text records; ValueError naming what is wrong."""
        try:
            ladder = tuple(str(g) for g in data["ladder"])
            pairs = [(str(m), str(p)) for m, p in data["grades"]]
            damage = tuple(str(d) for d in data["damage_labels"])
            grades = tuple(GradeMatch(m, p, "stored", ladder.index(p)) for m, p in pairs)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                "must hold ladder, grades ([model grade, ladder grade] pairs) and "
                f"damage_labels ({type(exc).__name__}: {exc})"
            ) from exc
        return cls(tuple(m for m, _ in pairs), damage, ladder, grades, ())

    def lines(self) -> list[str]:
        """The effective mapping, what was skipped, and how to change it."""
        out = ["grades (model -> policy):"]
        out += [f"  {g.line()}" for g in self.grades]
        if self.skipped:
            out.append(f"skipped ({len(self.skipped)}), the model lacks what they name:")
            out += [f"  {s}" for s in self.skipped]
        guessed = [g for g in self.grades if g.how == "rank"]
        if guessed:
            pairs = ", ".join(f"{g.model_grade}: {g.policy_grade}" for g in self.grades)
            out.append(
                f"hint: {', '.join(g.model_grade for g in guessed)} matched by rank; to pin "
                f"the mapping write  grade_map: {{{pairs}}}  in the policy, or map each "
                f"model grade to the policy grade it means ({', '.join(self.ladder)})"
            )
        return out


def ladder_of(spec: PolicyFile) -> tuple[str, ...]:
    """The policy's grades, best first: ``defaults.dock.grade_tiers`` in written order."""
    return tuple(spec.defaults.dock.grade_tiers)


def match_grades(
    ladder: Sequence[str], grade_map: Mapping[str, str], model: Sequence[str]
) -> tuple[list[GradeMatch], list[Issue]]:
    """Each model grade's policy grade (module docstring, steps 1-3), and the errors."""
    issues = [
        Issue(f"grade_map.{m}", f"{p!r} is not one of the policy's grades ({', '.join(ladder)})")
        for m, p in grade_map.items()
        if p not in ladder
    ]
    out: list[GradeMatch] = []
    last = max(len(model) - 1, 1)
    for i, m in enumerate(model):
        if m in grade_map and grade_map[m] in ladder:
            out.append(GradeMatch(m, grade_map[m], "grade_map", ladder.index(grade_map[m])))
        elif m in ladder:
            out.append(GradeMatch(m, m, "same name", ladder.index(m)))
        else:
            rank = int(i * (len(ladder) - 1) / last + 0.5) if len(model) > 1 else 0
            out.append(GradeMatch(m, ladder[rank], "rank", rank))
    if not issues and any(g.how != "same name" for g in out):
        for a, b in itertools.pairwise(out):
            if b.rank < a.rank:
                issues.append(
                    Issue(
                        "grade_map",
                        f"the model lists {b.model_grade!r} after {a.model_grade!r} (worse), "
                        f"but it maps to the better grade {b.policy_grade!r} "
                        f"(above {a.policy_grade!r}); map {b.model_grade} to "
                        f"{a.policy_grade} or a worse grade",
                    )
                )
    return out, issues


class _Fitter:
    """Rewrites grade and damage names into the model's, collecting skips and errors."""

    def __init__(self, fit_grades: list[GradeMatch], ladder: Sequence[str], damage: Sequence[str]):
        self.grades, self.ladder, self.damage = fit_grades, tuple(ladder), tuple(damage)
        self.skipped: list[Issue] = []
        self.issues: list[Issue] = []

    def to_model(self, path: str, names: Sequence[str]) -> list[str]:
        """The model grades standing for any of these policy grades, in the model's order."""
        for n in names:
            if n not in self.ladder:
                self.issues.append(
                    Issue(
                        path,
                        f"grade {n!r} is not one of the policy's grades "
                        f"(defaults.dock.grade_tiers: {', '.join(self.ladder)})",
                    )
                )
        wanted = set(names)
        return [g.model_grade for g in self.grades if g.policy_grade in wanted]

    def damage_in_model(self, path: str, names: Sequence[str], effect: str) -> list[str]:
        missing = [repr(n) for n in names if n not in self.damage]
        if missing:
            what = "label" if len(missing) == 1 else "labels"
            self.skipped.append(
                Issue(path, f"the model has no damage {what} {', '.join(missing)}: {effect}")
            )
        return [n for n in names if n in self.damage]

    def rule(self, where: Origin, i: int, rule: ConditionRule) -> ConditionRule | None:
        grades = self.to_model(where(("non_returnable", i, "grades")), rule.grades)
        if rule.grades and not grades:
            self.skipped.append(
                Issue(
                    where(("non_returnable", i, "grades")),
                    f"no model grade stands for {'/'.join(rule.grades)}: not tested",
                )
            )
        damage = self.damage_in_model(
            where(("non_returnable", i, "damage")), rule.damage, "that part of the rule is skipped"
        )
        if not grades and not damage:
            self.skipped.append(
                Issue(
                    where(("non_returnable", i)), "nothing the model scores is left: rule skipped"
                )
            )
            return None
        return rule.model_copy(update={"grades": grades, "damage": damage})

    def dock(self, where: Origin, dock: Dock) -> Dock:
        tiers: dict[str, str] = {}
        for g in self.grades:
            tier = dock.grade_tiers.get(g.policy_grade)
            if tier is None:
                self.issues.append(
                    Issue(
                        where(("dock", "grade_tiers")),
                        f"the model's grade {g.model_grade!r} (as {g.policy_grade!r}) has no "
                        "markdown tier",
                    )
                )
            else:
                tiers[g.model_grade] = tier
        channels = {}
        for name, ch in dock.channels.items():
            accepted = (
                None
                if ch.grades is None
                else self.to_model(where(("dock", "channels", name, "grades")), ch.grades)
            )
            channels[name] = ch.model_copy(update={"grades": accepted})
            if ch.grades and not accepted:
                self.skipped.append(
                    Issue(
                        where(("dock", "channels", name, "grades")),
                        f"no model grade stands for {'/'.join(ch.grades)}: channel disabled",
                    )
                )
        for g in self.grades:
            if not any(c.grades is None or g.model_grade in c.grades for c in channels.values()):
                self.issues.append(
                    Issue(
                        where(("dock", "channels")),
                        f"no channel accepts the model's grade {g.model_grade!r} "
                        f"(as {g.policy_grade!r})",
                    )
                )
        return dock.model_copy(update={"grade_tiers": tiers, "channels": channels})

    def category(self, where: Origin, cat: CategoryPolicy) -> CategoryPolicy:
        rules = [self.rule(where, i, r) for i, r in enumerate(cat.non_returnable)]
        return cat.model_copy(
            update={
                "non_returnable": [r for r in rules if r is not None],
                "dock": self.dock(where, cat.dock),
            }
        )

    def condition(self, spec: PolicyFile) -> Condition:
        cond = spec.condition
        pristine = self.to_model("condition.pristine_grades", cond.pristine_grades)
        if not pristine:
            self.skipped.append(
                Issue(
                    "condition.pristine_grades",
                    f"no model grade stands for {'/'.join(cond.pristine_grades)}: a "
                    "'damaged' reason is never contradicted by a pristine grade",
                )
            )
        self.to_model("condition.damaged_from_grade", [cond.damaged_from_grade])
        worst = (
            self.ladder.index(cond.damaged_from_grade)
            if cond.damaged_from_grade in self.ladder
            else len(self.ladder)
        )
        damaged = [g.model_grade for g in self.grades if g.rank >= worst]
        if not damaged and cond.damaged_from_grade in self.ladder:
            self.issues.append(
                Issue(
                    "condition.damaged_from_grade",
                    f"no model grade stands for {cond.damaged_from_grade} or worse; map "
                    f"{self.grades[-1].model_grade} to {cond.damaged_from_grade} in grade_map",
                )
            )
        ignore = self.damage_in_model(
            "condition.ignore_damage", cond.ignore_damage, "nothing to ignore"
        )
        # A model grade of that very name keeps it (the model's own order then decides).
        named = any(g.model_grade == cond.damaged_from_grade for g in self.grades)
        first = cond.damaged_from_grade if named or not damaged else damaged[0]
        return cond.model_copy(
            update={
                "pristine_grades": pristine,
                "damaged_from_grade": first,
                "ignore_damage": ignore,
            }
        )


def fit_policy(
    policy: Policy, spec: PolicyFile, grade_labels: Sequence[str], damage_labels: Sequence[str]
) -> tuple[PolicyFile, dict[str, CategoryPolicy], ModelFit]:
    """The policy's spec and categories in the model's names, and the fit; or ConfigError
    (code ``policy_model_mismatch``) listing every problem with its YAML path."""
    from serving.policy.config import origin_fn

    ladder = ladder_of(spec)
    grades, issues = match_grades(ladder, spec.grade_map, grade_labels)
    fitter = _Fitter(grades, ladder, damage_labels)
    fitter.issues += issues
    for m in spec.grade_map:
        if m not in grade_labels:
            fitter.skipped.append(Issue(f"grade_map.{m}", "the model has no such grade: unused"))
    categories = {}
    new_spec = spec
    if not issues:
        new_spec = spec.model_copy(update={"condition": fitter.condition(spec)})
        for name, cat in policy.categories.items():
            where = origin_fn(name, policy.overrides.get(name, {}), policy.raw_defaults)
            categories[name] = fitter.category(where, cat)
    if fitter.issues:
        unique = list(dict.fromkeys(fitter.issues))
        raise ConfigError(
            f"policy {policy.version} ({policy.source}) does not fit the model's labels:\n"
            + "\n".join(f"  {i}" for i in unique),
            code="policy_model_mismatch",
            details={
                "errors": [{"path": i.path, "message": i.message} for i in unique],
                "grade_labels": list(grade_labels),
                "damage_labels": list(damage_labels),
            },
        )
    fit = ModelFit(
        tuple(grade_labels),
        tuple(damage_labels),
        ladder,
        tuple(grades),
        tuple(dict.fromkeys(fitter.skipped)),
    )
    return new_spec, categories, fit
