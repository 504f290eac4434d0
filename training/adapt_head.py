"""Refit the grade and damage heads on cached backbone features (torch, CPU, seconds).

Grade head: multinomial logistic regression on the pooled features (mirror-averaged
exports average the views' logits, which for a linear head is the head of the views'
mean features, so the fit uses that mean). The features are standardised for the
optimiser and the result is folded back into one ``[G, C]`` weight and ``[G]`` bias, so
the graph needs no extra node. The penalty pulls the weights towards an *anchor*:
either the model's own head (L2-SP, Li et al. 2018: with few labels the adapted model
stays near what it knew) or zero (a plain probe: when the new photos are far from the
training world the old head is a poor prior). Cross-validation on the labelled photos
picks the anchor and the strength by out-of-fold log-loss, so neither is a guess, and
the out-of-fold logits it leaves behind are what temperature scaling is fitted on (with
the validation photos), instead of 35-76 validation photos alone.

Damage head: the 1x1 convolution on the feature map, refitted through the model's own
log-sum-exp pooling (``training.model.LSE_R``) so the class activation maps keep their
meaning, anchored on the model's weights. Only labels with enough positive and negative
photos are refitted; the others keep the model's weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from training.model import LSE_R

L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
ANCHORS = ("model", "zero")
MAX_FOLDS = 5
MIN_DAMAGE_EXAMPLES = 5
DAMAGE_L2 = 1e-3
DAMAGE_STEPS = 200


@dataclass(frozen=True)
class GradeFit:
    weight: np.ndarray  # [G, C] on the raw pooled features
    bias: np.ndarray  # [G]
    anchor: str  # "model" or "zero"
    l2: float
    cv_log_loss: dict[str, float]  # "anchor/l2" -> mean out-of-fold log-loss
    oof_logits: np.ndarray  # [N_new, G] out-of-fold logits of the labelled photos
    folds: int


@dataclass(frozen=True)
class DamageFit:
    weight: np.ndarray  # [D', C, 1, 1]
    bias: np.ndarray  # [D']
    refitted: tuple[str, ...]
    kept: dict[str, str] = field(default_factory=dict)  # label -> why the model's weights stay


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    sd = np.maximum(x.std(axis=0), 1e-6)
    return mu, sd


def _fit_softmax(
    xs: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    anchor_w: torch.Tensor,
    anchor_b: torch.Tensor,
    l2: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted cross-entropy + l2 * |W - anchor|^2 by L-BFGS (float64, full batch)."""
    weight = anchor_w.clone().requires_grad_(True)
    bias = anchor_b.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=300, tolerance_grad=1e-7, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        ce = F.cross_entropy(xs @ weight.T + bias, y, reduction="none")
        loss = (ce * w).sum() / w.sum() + l2 * ((weight - anchor_w) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach(), bias.detach()


def _folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Stratified fold index per photo (each grade dealt round-robin after a shuffle)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    offset = 0
    for grade in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == grade))
        fold[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return fold


def fit_grade_head(
    x_new: np.ndarray,
    y_new: np.ndarray,
    model_weight: np.ndarray,
    model_bias: np.ndarray,
    *,
    x_replay: np.ndarray | None = None,
    y_replay: np.ndarray | None = None,
    seed: int = 0,
) -> GradeFit:
    """Fit the grade head on ``x_new`` ([N, C] view-averaged) with optional replay photos.

    Replay photos always stay in the fitting folds and weigh as much, in total, as the
    new photos (never more), so a few hundred reviewed labels are not drowned by the
    original training set; the cross-validation scores only new photos.
    """
    xr = np.zeros((0, x_new.shape[1])) if x_replay is None else x_replay
    yr = np.zeros(0, dtype=np.int64) if y_replay is None else y_replay
    mu, sd = _standardise(np.concatenate([x_new, xr]))
    t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))  # noqa: E731
    xs_new, xs_rep = t((x_new - mu) / sd), t((xr - mu) / sd)
    yn, yrep = torch.from_numpy(y_new.astype(np.int64)), torch.from_numpy(yr.astype(np.int64))
    w_rep = min(1.0, len(y_new) / len(yr)) if len(yr) else 0.0
    anchors = {
        "model": (t(model_weight * sd), t(model_bias + model_weight @ mu)),
        "zero": (
            torch.zeros(model_weight.shape, dtype=torch.float64),
            torch.zeros(len(model_bias), dtype=torch.float64),
        ),
    }
    counts = np.bincount(y_new)
    k = max(2, min(MAX_FOLDS, int(counts[counts > 0].min())))
    fold = _folds(y_new, k, seed)

    def fit(mask: np.ndarray, anchor: str, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
        m = torch.from_numpy(mask)
        xs = torch.cat([xs_new[m], xs_rep])
        ys = torch.cat([yn[m], yrep])
        w = torch.cat(
            [
                torch.ones(int(m.sum()), dtype=torch.float64),
                torch.full((len(yrep),), w_rep, dtype=torch.float64),
            ]
        )
        return _fit_softmax(xs, ys, w, *anchors[anchor], l2)

    scores: dict[str, float] = {}
    oof: dict[str, np.ndarray] = {}
    for anchor in ANCHORS:
        for l2 in L2_GRID:
            logits = np.zeros((len(y_new), len(model_bias)))
            for f in range(k):
                held = fold == f
                weight, bias = fit(~held, anchor, l2)
                logits[held] = (xs_new[torch.from_numpy(held)] @ weight.T + bias).numpy()
            key = f"{anchor}/{l2:g}"
            scores[key] = float(F.cross_entropy(torch.from_numpy(logits), yn).item())
            oof[key] = logits
    best = min(scores, key=lambda key: scores[key])
    anchor, l2 = best.split("/")[0], float(best.split("/")[1])
    weight, bias = fit(np.ones(len(y_new), dtype=bool), anchor, l2)
    w_raw = weight.numpy() / sd
    b_raw = bias.numpy() - w_raw @ mu
    return GradeFit(
        w_raw.astype(np.float32), b_raw.astype(np.float32), anchor, l2, scores, oof[best], k
    )


def damage_logits(fmap: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The model's damage logits from ``[N, V, C, h, w]`` maps: LSE pool, views averaged."""
    scores = torch.einsum("nvchw,dc->nvdhw", fmap, weight) + bias.view(1, 1, -1, 1, 1)
    area = float(scores.shape[-1] * scores.shape[-2])
    pooled = (torch.logsumexp(scores.flatten(3) * LSE_R, dim=3) - math.log(area)) / LSE_R
    return pooled.mean(dim=1)


def fit_damage_head(
    fmap: np.ndarray,
    targets: np.ndarray,
    labels: tuple[str, ...],
    model_weight: np.ndarray,
    model_bias: np.ndarray,
    *,
    labelled: tuple[str, ...],
) -> DamageFit:
    """Refit the rows of ``labelled`` damage labels that have enough of both kinds."""
    pos, neg = targets.sum(axis=0), (1 - targets).sum(axis=0)
    kept: dict[str, str] = {}
    rows: list[int] = []
    for d, name in enumerate(labels):
        if name not in labelled:
            kept[name] = "not labelled in the manifest"
        elif min(pos[d], neg[d]) < MIN_DAMAGE_EXAMPLES:
            kept[name] = (
                f"{int(pos[d])} positive / {int(neg[d])} negative photos (< {MIN_DAMAGE_EXAMPLES})"
            )
        else:
            rows.append(d)
    weight = model_weight.copy()
    bias = model_bias.copy()
    if rows:
        x = torch.from_numpy(fmap.astype(np.float32))
        idx = torch.tensor(rows)
        w0 = torch.from_numpy(model_weight[rows, :, 0, 0].astype(np.float32))
        w = w0.clone().requires_grad_(True)
        b = torch.from_numpy(model_bias[rows].astype(np.float32)).requires_grad_(True)
        target = torch.from_numpy(targets[:, rows].astype(np.float32))
        opt = torch.optim.Adam([w, b], lr=1e-2)
        for _ in range(DAMAGE_STEPS):
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(damage_logits(x, w, b), target)
            (loss + DAMAGE_L2 * ((w - w0) ** 2).sum()).backward()
            opt.step()
        weight[idx.numpy(), :, 0, 0] = w.detach().numpy()
        bias[idx.numpy()] = b.detach().numpy()
    refitted = tuple(labels[d] for d in rows)
    return DamageFit(weight.astype(np.float32), bias.astype(np.float32), refitted, kept)
