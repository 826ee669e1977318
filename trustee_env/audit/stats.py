"""Agreement statistics for labelled verdicts: accuracy, Cohen's kappa, confusion matrix, majority vote.

Small and exact on purpose: a few hundred labels, three classes; no numerical library needed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["LABELS", "accuracy", "agreement", "cohen_kappa", "confusion", "majority"]

LABELS: tuple[int, ...] = (-1, 0, 1)
"""The ternary verdicts, in the order the confusion matrix lists them."""


def accuracy(truth: Sequence[Any], predicted: Sequence[Any]) -> float | None:
    """The share of equal pairs (None when there are none)."""
    if not truth:
        return None
    return round(sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth), 4)


def cohen_kappa(truth: Sequence[Any], predicted: Sequence[Any]) -> float | None:
    """Cohen's kappa: agreement beyond what the two marginal distributions give by chance.

    1 is perfect agreement, 0 is chance, negative is worse than chance. When both raters always give
    the same single label the chance agreement is 1 and kappa is undefined: None.
    """
    n = len(truth)
    if n == 0:
        return None
    observed = sum(t == p for t, p in zip(truth, predicted, strict=True)) / n
    a, b = Counter(truth), Counter(predicted)
    expected = sum(a[label] * b[label] for label in set(a) | set(b)) / (n * n)
    if expected >= 1.0:
        return None
    return round((observed - expected) / (1.0 - expected), 4)


def confusion(truth: Sequence[Any], predicted: Sequence[Any], labels: Sequence[Any] = LABELS) -> dict[str, Any]:
    """``{"labels": [...], "matrix": rows of counts}``: row = true label, column = predicted label."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for t, p in zip(truth, predicted, strict=True):
        if t in index and p in index:
            matrix[index[t]][index[p]] += 1
    return {"labels": list(labels), "matrix": matrix}


def majority(votes: Sequence[Any]) -> Any:
    """The most common vote; a tie goes to the lowest (the cautious verdict), so a split never pays."""
    counts = Counter(votes)
    top = max(counts.values())
    return min(vote for vote, count in counts.items() if count == top)


def agreement(samples: Sequence[Sequence[Any]]) -> float | None:
    """The share of items whose repeated samples all agree."""
    if not samples:
        return None
    return round(sum(len(set(votes)) == 1 for votes in samples) / len(samples), 4)
