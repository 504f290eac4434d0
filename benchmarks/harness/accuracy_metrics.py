"""Grade-accuracy arithmetic shared by the dock and shopper parts of the accuracy section.

Grades are ordinal (the model card lists them best first), so besides exact accuracy the
section reports *within-one* accuracy: a B_like_new called C_good costs a markdown step,
an A_new called E_damaged sends a sellable item to salvage. The confusion matrix keeps
the two apart, which a single accuracy figure cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def grade_figures(labels: Sequence[str], pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Exact and within-one accuracy and the confusion matrix of (true, predicted) pairs.

    ``confusion[i][j]`` counts items whose true grade is ``labels[i]`` and whose predicted
    grade is ``labels[j]``. A grade outside ``labels`` is an error in the caller (the
    generator and the model card disagree), not something to skip quietly.
    """
    index = {g: i for i, g in enumerate(labels)}
    unknown = sorted({g for pair in pairs for g in pair if g not in index})
    if unknown:
        raise ValueError(f"grades {unknown} are not among the model's grades {list(labels)}")
    confusion = [[0] * len(labels) for _ in labels]
    exact = within_one = 0
    for true, pred in pairs:
        i, j = index[true], index[pred]
        confusion[i][j] += 1
        exact += i == j
        within_one += abs(i - j) <= 1
    n = len(pairs)
    return {
        "n": n,
        "exact": exact,
        "within_one": within_one,
        "exact_accuracy": round(exact / n, 4) if n else None,
        "within_one_accuracy": round(within_one / n, 4) if n else None,
        "labels": list(labels),
        "confusion": confusion,
    }


def plot_confusions(panels: Sequence[tuple[str, dict[str, Any]]], path: Path) -> Path | None:
    """One PNG with a confusion-matrix panel per (title, figures); None without matplotlib.

    The PNG is a convenience for the README reader; the JSON holds the same counts, so a
    machine without matplotlib loses nothing that the summary needs.
    """
    panels = [(t, f) for t, f in panels if f.get("n")]
    if not panels:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (title, fig_data) in zip(axes[0], panels, strict=True):
        labels = [g.split("_")[0] for g in fig_data["labels"]]
        matrix = fig_data["confusion"]
        ax.imshow(matrix, cmap="Blues")
        peak = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                colour = "white" if count > peak / 2 else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=colour)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted grade")
        ax.set_ylabel("true grade")
        ax.set_title(f"{title}: exact {fig_data['exact']}/{fig_data['n']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
