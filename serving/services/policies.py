"""Every policy version's full text, stored by its hash, and read back as a policy.

The text is the canonical JSON the version hashes (``Policy.resolved()``: every category
merged, every default and model-card threshold filled in), so it is self-contained (no
model card needed to rebuild it) and checkable (``"pol-" + sha256(text)[:12]`` is the
version). The service records the version with the first decision or inspection made
under it, in that write's transaction: a stored decision's policy text is always there.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from serving.domain_errors import NotFound
from serving.policy import DEFAULT_CATEGORY, Policy, policy_from_dict
from serving.storage import lengths, repo
from vision.errors import ConfigError


def policy_text(policy: Policy) -> str:
    """The canonical JSON the policy's version hashes."""
    return json.dumps(
        policy.resolved(),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


# version -> canonical text: a process serves one or two policies; the JSON is built once.
_TEXTS: dict[str, str] = {}


def text_version(text: str) -> str:
    return "pol-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def record_policy(s: Session, policy: Policy, now: datetime) -> None:
    """Store the policy's text under its version unless it is there (idempotent): one
    insert-or-ignore per decision, in the decision's transaction."""
    text = _TEXTS.get(policy.version)
    if text is None:
        text = _TEXTS.setdefault(policy.version, policy_text(policy))
    name = policy.spec.name[: lengths.ITEM_NAME]
    repo.record_policy_version(s, version=policy.version, name=name, text=text, now=now)


def policy_from_text(text: str, version: str) -> Policy:
    """Rebuild the policy a stored text describes; ConfigError when the text is not
    the one ``version`` hashes or no longer rebuilds to it (the policy format changed)."""
    if text_version(text) != version:
        raise ConfigError(
            f"The stored text of policy {version} does not hash to its version (it was altered).",
            code="policy_text_mismatch",
        )
    # A policy fitted to a model's own labels stores its fit (``grade_fit``), and
    # ``policy_from_dict`` rebuilds it already fitted, under the same version.
    data: dict[str, Any] = json.loads(text)
    categories = dict(data.pop("categories"))
    data["defaults"] = categories[DEFAULT_CATEGORY]
    data["categories"] = {k: v for k, v in categories.items() if k != DEFAULT_CATEGORY}
    policy = policy_from_dict(data, source=f"stored policy {version}")
    if policy.version != version:
        raise ConfigError(
            f"The stored text of policy {version} no longer rebuilds that version "
            f"(it gives {policy.version}): the policy format changed since.",
            code="policy_text_mismatch",
        )
    return policy


def stored_policy(s: Session, version: str) -> Policy:
    """The policy stored under ``version``; NotFound (``unknown_policy_version``) when
    its text was never stored (decisions made before the text was kept)."""
    row = repo.get_policy_version(s, version)
    if row is None:
        raise NotFound(
            f"The text of policy {version} is not stored (it decided before policy texts "
            "were kept), so its decisions cannot be replayed.",
            code="unknown_policy_version",
        )
    return policy_from_text(row.text, version)
