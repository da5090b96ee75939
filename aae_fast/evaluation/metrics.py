"""Classification and clustering error rates, as the paper reports them.

All errors are **fractions in [0, 1]** (multiply by 100 for the paper's percentages).

Clustering error: each cluster is given a label, and the error is the fraction of test examples
whose cluster's label differs from their own. Two ways to give the labels:

* the paper's (Makhzani et al. 2015, Sec. 6), :func:`paper_cluster_mapping`: "for each cluster i,
  we found the validation example x_n that maximizes q(y_i|x_n), and assigned the label of x_n to
  all the points in the cluster i"; one labelled example per cluster, none from the test set;
* the majority label of the cluster's own members, :func:`cluster_to_label_mapping` (the common
  protocol of later clustering papers; it reads the test labels, so it is the more optimistic of
  the two). An empty cluster holds no examples, so it cannot change the error; it maps to ``-1``
  (no label). Ties within a cluster go to the smallest label, so results are deterministic.

:func:`clustering_error` uses the majority mapping unless it is given one (``mapping=``).

Inputs may be torch tensors or anything ``torch.as_tensor`` accepts (numpy arrays, lists), on any
device; predictions are either integer labels ``[N]`` or scores/logits ``[N, C]`` (argmax over C).
Errors name the argument, what was expected and what was received.
"""

from __future__ import annotations

import torch

from .._checks import positive_int

__all__ = [
    "classification_error",
    "cluster_to_label_mapping",
    "clustering_error",
    "paper_cluster_mapping",
]


def _as_tensor(value: object, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name} must be a tensor or array-like, got {type(value).__name__}"
        ) from err


def _is_integer(t: torch.Tensor) -> bool:
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool


def _labels(value: object, name: str) -> torch.Tensor:
    """A 1-D integer, non-negative label tensor, as int64."""
    t = _as_tensor(value, name)
    if t.dim() != 1:
        raise ValueError(f"{name} must have shape [N], got shape {tuple(t.shape)}")
    if not _is_integer(t):
        raise TypeError(f"{name} must have an integer dtype, got {t.dtype}")
    t = t.to(torch.int64)
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} must be non-negative, got minimum {int(t.min())}")
    return t


def _predictions(value: object, name: str) -> torch.Tensor:
    """Integer predictions [N], or the argmax of float scores [N, C], as int64."""
    t = _as_tensor(value, name)
    if t.dim() == 2 and t.is_floating_point():
        if t.shape[1] == 0:
            raise ValueError(f"{name} as scores must have shape [N, C] with C >= 1, "
                             f"got shape {tuple(t.shape)}")
        return t.argmax(dim=1)
    if t.dim() == 1 and _is_integer(t):
        return _labels(t, name)
    raise ValueError(
        f"{name} must be integer labels of shape [N] or floating-point scores of shape [N, C], "
        f"got shape {tuple(t.shape)} with dtype {t.dtype}"
    )


def _same_length(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{a_name} and {b_name} must have the same number of rows N: "
            f"{a_name} has {a.shape[0]}, {b_name} has {b.shape[0]}"
        )
    if a.shape[0] == 0:
        raise ValueError(f"{a_name} and {b_name} are empty: an error rate needs N >= 1")


def classification_error(predictions: object, labels: object) -> float:
    """Fraction of examples whose predicted label differs from the true one, in [0, 1].

    Args:
        predictions: predicted labels ``[N]`` (integer dtype), or scores/logits/probabilities
            ``[N, C]`` (floating dtype; the prediction is the argmax over C).
        labels: true labels ``[N]`` (integer dtype, non-negative).

    Returns:
        The error as a Python float fraction (0.05 means 5 %).
    """
    pred = _predictions(predictions, "predictions")
    lab = _labels(labels, "labels")
    _same_length(pred, "predictions", lab, "labels")
    return float((pred != lab.to(pred.device)).double().mean())


def _cluster_mapping(
    cluster_ids: object, labels: object, num_clusters: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mapping [K], cluster ids [N], labels [N]), validated, all int64 on one device."""
    k = positive_int(num_clusters, "num_clusters")
    raw = _as_tensor(cluster_ids, "cluster_ids")
    if raw.dim() == 2 and raw.is_floating_point() and raw.shape[1] != k:
        raise ValueError(
            f"cluster_ids as scores must have shape [N, num_clusters={k}], "
            f"got shape {tuple(raw.shape)}"
        )
    ids = _predictions(raw, "cluster_ids")
    lab = _labels(labels, "labels").to(ids.device)
    _same_length(ids, "cluster_ids", lab, "labels")
    if int(ids.max()) >= k:
        raise ValueError(
            f"cluster_ids must lie in [0, num_clusters={k}), got maximum {int(ids.max())}"
        )
    # Count over the labels that occur (sorted), not over 0..max(label): labels may be any ids.
    classes, lab_index = torch.unique(lab, return_inverse=True)
    num_classes = classes.numel()
    counts = torch.bincount(ids * num_classes + lab_index, minlength=k * num_classes)
    counts = counts.view(k, num_classes)
    # argmax returns the first maximal index: ties go to the smallest label.
    mapping = classes[counts.argmax(dim=1)]
    mapping[counts.sum(dim=1) == 0] = -1
    return mapping, ids, lab


def cluster_to_label_mapping(
    cluster_ids: object, labels: object, num_clusters: int
) -> torch.Tensor:
    """The majority label of each cluster's members.

    Args:
        cluster_ids: cluster of each example, integers in ``[0, num_clusters)`` of shape ``[N]``,
            or scores ``[N, num_clusters]`` (floating dtype; argmax).
        labels: true labels ``[N]`` (integer dtype, non-negative).
        num_clusters: K, the number of clusters (clusters may be empty).

    Returns:
        int64 tensor ``[K]`` on the device of ``cluster_ids``: ``mapping[k]`` is the most frequent
        label in cluster k (the smallest such label on a tie), or ``-1`` if cluster k is empty.
    """
    return _cluster_mapping(cluster_ids, labels, num_clusters)[0]


def paper_cluster_mapping(validation_scores: object, validation_labels: object) -> torch.Tensor:
    """The paper's label of each cluster (Sec. 6): that of the validation example x_n which
    maximises q(y_i | x_n) for cluster i.

    Args:
        validation_scores: q(y|x) of the validation examples, ``[N, K]`` floating point (softmax
            probabilities, or logits: the maximising example is the same only for probabilities,
            so pass what the paper used, q(y|x)).
        validation_labels: their true labels ``[N]`` (integer dtype, non-negative).

    Returns:
        int64 tensor ``[K]`` on the device of ``validation_scores``: ``mapping[i]`` is the label of
        the example with the largest ``validation_scores[:, i]`` (the first such example on a tie).
    """
    scores = _as_tensor(validation_scores, "validation_scores")
    if scores.dim() != 2 or not scores.is_floating_point() or scores.shape[1] == 0:
        raise ValueError(
            "validation_scores must be floating-point q(y|x) of shape [N, K] with K >= 1, got "
            f"shape {tuple(scores.shape)} with dtype {scores.dtype}"
        )
    lab = _labels(validation_labels, "validation_labels").to(scores.device)
    _same_length(scores, "validation_scores", lab, "validation_labels")
    if bool(torch.isnan(scores).any()):
        raise ValueError("validation_scores must not hold NaN")
    return lab[scores.argmax(dim=0)]


def clustering_error(
    cluster_ids: object, labels: object, num_clusters: int, *, mapping: object | None = None
) -> float:
    """Error after giving each cluster a label, a fraction in [0, 1].

    ``clustering_error(ids, labels, K) == classification_error(mapping[ids], labels)`` with
    ``mapping = cluster_to_label_mapping(ids, labels, K)`` (majority labels) unless ``mapping`` is
    given, e.g. the paper's ``paper_cluster_mapping(validation_scores, validation_labels)``. With the
    majority mapping, a relabelling (permutation) of the cluster ids does not change the error and a
    clustering whose every cluster is pure has error 0.

    Args: as :func:`cluster_to_label_mapping`, and
        mapping: the label of each cluster, integers ``[num_clusters]`` (-1: no label, always
            wrong), or None for the majority labels of ``labels``.

    Returns:
        The error as a Python float fraction.
    """
    majority, ids, lab = _cluster_mapping(cluster_ids, labels, num_clusters)
    if mapping is None:
        return float((majority[ids] != lab).double().mean())
    given = _as_tensor(mapping, "mapping")
    if given.shape != (num_clusters,) or not _is_integer(given):
        raise ValueError(
            f"mapping must be integer labels of shape [num_clusters={num_clusters}], got shape "
            f"{tuple(given.shape)} with dtype {given.dtype}"
        )
    given = given.to(device=ids.device, dtype=torch.int64)
    return float((given[ids] != lab).double().mean())
