"""Losses for the three heads, and why these ones.

Grade (ordinal). Plain cross-entropy treats "A_new predicted as E_damaged" the same as
"A_new predicted as B_like_new"; for markdown tiers the first is far worse. We use
SORD (soft ordinal labels, Diaz & Marathe, CVPR 2019): cross-entropy against the target
distribution q_k = softmax_k(-alpha * |k - y|), so probability mass near the true grade is
rewarded more than mass far away, plus an expected-grade term |sum_k p_k k - y| that
directly penalises the mean absolute grade error we report. The logits stay a plain
G-way softmax, so temperature scaling, argmax accuracy and the coverage curve work
unchanged. Unlabelled records (grade index -1) do not contribute. Optional per-class
weights implement class-weighted loss for imbalanced grades.

Damage (multi-label): binary cross-entropy with logits per label; an empty label set
gives a zero loss instead of NaN.

Embedding: supervised contrastive loss (Khosla et al., 2020) with SKU ids as classes at
temperature 0.1: every other photo of the same SKU in the batch is a positive, all other
photos are negatives. The P-SKUs x K-photos batch sampler in ``training.data`` makes
sure positives exist. Anchors without a positive are skipped; with DDP the loss is
computed per rank on the local batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from training.model import GraderOutputs


class LossWeights(NamedTuple):
    grade: float = 1.0
    grade_mae: float = 0.5
    damage: float = 1.0
    embedding: float = 0.5


class LossParts(NamedTuple):
    total: Tensor
    grade: Tensor
    grade_mae: Tensor
    damage: Tensor
    embedding: Tensor


def sord_targets(grades: Tensor, num_grades: int, alpha: float) -> Tensor:
    """Soft ordinal targets [N, G]; rows for unlabelled samples are meaningless (masked)."""
    ks = torch.arange(num_grades, device=grades.device, dtype=torch.float32)
    dist = (ks[None, :] - grades.clamp(min=0).float()[:, None]).abs()
    return torch.softmax(-alpha * dist, dim=1)


def ordinal_grade_loss(
    logits: Tensor, grades: Tensor, *, alpha: float = 2.0, class_weights: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(SORD cross-entropy, expected-grade absolute error), both weighted means."""
    logits = logits.float()
    labelled = grades >= 0
    weights = labelled.float()
    if class_weights is not None:
        weights = weights * class_weights.to(logits.device)[grades.clamp(min=0)]
    denom = weights.sum().clamp(min=1e-6)
    log_p = F.log_softmax(logits, dim=1)
    ce = -(sord_targets(grades, logits.shape[1], alpha) * log_p).sum(dim=1)
    ks = torch.arange(logits.shape[1], device=logits.device, dtype=torch.float32)
    expected = (log_p.exp() * ks).sum(dim=1)
    mae = (expected - grades.float()).abs()
    # where() rather than masking by multiplication: an unlabelled row's -1 never leaks.
    zero = torch.zeros_like(ce)
    return (
        (torch.where(labelled, ce, zero) * weights).sum() / denom,
        (torch.where(labelled, mae, zero) * weights).sum() / denom,
    )


def damage_loss(logits: Tensor, targets: Tensor) -> Tensor:
    if logits.shape[1] == 0:
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def supcon_loss(embedding: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised contrastive loss over a batch of L2-normalised embeddings."""
    z = embedding.float()
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(eye, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~eye & (labels[:, None] >= 0)
    counts = positives.sum(dim=1)
    has_pos = counts > 0
    if not bool(has_pos.any()):
        return z.sum() * 0.0
    pos_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    per_anchor = -pos_log_prob[has_pos] / counts[has_pos].float()
    return per_anchor.mean()


def grader_loss(
    out: GraderOutputs,
    grades: Tensor,
    damage: Tensor,
    skus: Tensor,
    *,
    weights: LossWeights,
    sord_alpha: float = 2.0,
    supcon_temperature: float = 0.1,
    class_weights: Tensor | None = None,
) -> LossParts:
    grade_ce, grade_mae = ordinal_grade_loss(
        out.grade_logits, grades, alpha=sord_alpha, class_weights=class_weights
    )
    dmg = damage_loss(out.damage_logits, damage)
    emb = supcon_loss(out.embedding, skus, supcon_temperature)
    total = (
        weights.grade * grade_ce
        + weights.grade_mae * grade_mae
        + weights.damage * dmg
        + weights.embedding * emb
    )
    return LossParts(total, grade_ce.detach(), grade_mae.detach(), dmg.detach(), emb.detach())
