"""Classification and clustering error rates, as the paper reports them.

All errors are **fractions in [0, 1]** (multiply by 100 for the paper's percentages).

Clustering error (Makhzani et al. 2015, Sec. 6): after training, each cluster is assigned the
majority label of the examples it holds, and the error is the fraction of examples whose cluster's
label differs from their own. An empty cluster holds no examples, so it cannot change the error; it
maps to ``-1`` (no label). Ties within a cluster go to the smallest label, so results are
deterministic.

Inputs may be torch tensors or anything ``torch.as_tensor`` accepts (numpy arrays, lists), on any
device; predictions are either integer labels ``[N]`` or scores/logits ``[N, C]`` (argmax over C).
Errors name the argument, what was expected and what was received.
"""

from __future__ import annotations

import torch

__all__ = ["classification_error", "cluster_to_label_mapping", "clustering_error"]


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


def _num_clusters(num_clusters: object) -> int:
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, int) or num_clusters < 1:
        raise ValueError(f"num_clusters must be a positive int, got {num_clusters!r}")
    return num_clusters


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
    k = _num_clusters(num_clusters)
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
    num_classes = int(lab.max()) + 1
    counts = torch.bincount(ids * num_classes + lab, minlength=k * num_classes).view(k, num_classes)
    # argmax returns the first maximal index: ties go to the smallest label.
    mapping = counts.argmax(dim=1)
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


def clustering_error(cluster_ids: object, labels: object, num_clusters: int) -> float:
    """Error after mapping each cluster to its majority label, a fraction in [0, 1].

    ``clustering_error(ids, labels, K) == classification_error(mapping[ids], labels)`` with
    ``mapping = cluster_to_label_mapping(ids, labels, K)``. A relabelling (permutation) of the
    cluster ids does not change it; a clustering whose every cluster is pure has error 0.

    Args: as :func:`cluster_to_label_mapping`.

    Returns:
        The error as a Python float fraction.
    """
    mapping, ids, lab = _cluster_mapping(cluster_ids, labels, num_clusters)
    return float((mapping[ids] != lab).double().mean())
