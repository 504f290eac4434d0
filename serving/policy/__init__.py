"""The pure policy engine: shopper decisions and dock dispositions from one YAML file.

``decide_return(policy, ReturnContext) -> ShopperDecision`` and
``decide_disposition(policy, DockContext) -> DockDisposition`` are pure functions of
their inputs: no I/O, no clock, no model, no database. ``load_policy`` is the only
function that reads a file. See ``serving.policy.shopper`` for the flag codes and the
outcome precedence, ``serving.policy.dock`` for the recovery formula.
"""

from __future__ import annotations

from serving.policy.config import (
    DEFAULT_CATEGORY,
    CategoryPolicy,
    Policy,
    PolicyFile,
    check_compatible,
    default_policy_path,
    load_policy,
    parse_policy,
    policy_from_dict,
)
from serving.policy.dock import decide_disposition
from serving.policy.shopper import decide_return
from serving.policy.types import (
    FLAG_CODES,
    OUTCOMES,
    REASON_CODES,
    ChannelOption,
    CopyMatch,
    CustomerHistory,
    DockContext,
    DockDisposition,
    Flag,
    PhotoQuality,
    PolicyInputError,
    QualityIssue,
    ReturnContext,
    ReusedPhoto,
    Scores,
    ShopperDecision,
)

__all__ = [
    "DEFAULT_CATEGORY",
    "FLAG_CODES",
    "OUTCOMES",
    "REASON_CODES",
    "CategoryPolicy",
    "ChannelOption",
    "CopyMatch",
    "CustomerHistory",
    "DockContext",
    "DockDisposition",
    "Flag",
    "PhotoQuality",
    "Policy",
    "PolicyFile",
    "PolicyInputError",
    "QualityIssue",
    "ReturnContext",
    "ReusedPhoto",
    "Scores",
    "ShopperDecision",
    "check_compatible",
    "decide_disposition",
    "decide_return",
    "default_policy_path",
    "load_policy",
    "parse_policy",
    "policy_from_dict",
]
