"""Classification and clustering error rates on hand-made cases, and bad inputs."""

import numpy as np
import pytest
import torch

from aae_fast.evaluation import (
    classification_error,
    cluster_to_label_mapping,
    clustering_error,
    paper_cluster_mapping,
)


def test_classification_error_counts():
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    pred = labels.clone()
    assert classification_error(pred, labels) == 0.0
    pred[[1, 4, 7]] = 0
    assert classification_error(pred, labels) == pytest.approx(0.3)
    assert classification_error((labels + 1) % 10, labels) == 1.0


def test_classification_error_from_logits_and_arrays():
    labels = np.array([2, 0, 1, 1], dtype=np.uint8)
    logits = torch.tensor(
        [[0.1, 0.2, 3.0], [5.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-2.0, 4.0, 1.0]]
    )  # argmax: 2, 0, 2, 1 -> one wrong
    assert classification_error(logits, labels) == pytest.approx(0.25)
    assert classification_error(logits.softmax(1).numpy(), labels) == pytest.approx(0.25)
    assert classification_error([2, 0, 1, 1], labels) == 0.0
    assert isinstance(classification_error(logits, labels), float)


def test_perfect_clustering_with_permuted_ids():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (500,), generator=g)
    perm = torch.randperm(10, generator=g)
    ids = perm[labels]  # cluster perm[c] holds exactly class c
    assert clustering_error(ids, labels, 10) == 0.0
    mapping = cluster_to_label_mapping(ids, labels, 10)
    assert torch.equal(mapping[perm], torch.arange(10))
    assert mapping.dtype == torch.int64


def test_more_clusters_than_classes_pure():
    # The paper's 16- and 30-cluster runs on 10 classes: splitting a class costs nothing.
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    ids = torch.tensor([5, 3, 0, 0, 15, 9, 9])
    assert clustering_error(ids, labels, 16) == 0.0


def test_known_clustering_error_and_mapping():
    # cluster 0: labels 1, 1, 2 -> 1 (one error); cluster 1: 0, 0, 0, 3 -> 0 (one error);
    # cluster 2: 3 -> 3; cluster 3 empty -> -1; cluster 4: tie 2 vs 1 -> 1 (smallest; one error).
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 4, 4])
    labels = torch.tensor([1, 1, 2, 0, 0, 0, 3, 3, 2, 1])
    mapping = cluster_to_label_mapping(ids, labels, 5)
    assert mapping.tolist() == [1, 0, 3, -1, 1]
    assert clustering_error(ids, labels, 5) == pytest.approx(3 / 10)


def test_labels_need_not_be_small_integers():
    # Counted over the labels that occur, not over 0..max(label): ids or hashes as labels work.
    ids = torch.tensor([0, 0, 1, 1, 1])
    labels = torch.tensor([10**10, 10**10, 7, 7, 10**10])
    assert cluster_to_label_mapping(ids, labels, 3).tolist() == [10**10, 7, -1]
    assert clustering_error(ids, labels, 3) == pytest.approx(1 / 5)


def test_paper_mapping_takes_the_most_confident_validation_example():
    # Sec. 6: cluster i gets the label of the validation example maximising q(y_i | x).
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.9, 0.05, 0.05], [0.3, 0.3, 0.4]])
    val_labels = torch.tensor([5, 2, 8, 2])
    mapping = paper_cluster_mapping(scores, val_labels)
    assert mapping.tolist() == [8, 2, 2]  # rows 2, 1 and 3 are the most confident per cluster
    test_ids = torch.tensor([0, 0, 1, 2, 2])
    test_labels = torch.tensor([8, 8, 2, 9, 9])
    # Paper: [8, 2, 2][ids] = 8 8 2 2 2 -> two errors; the test members' majorities: none.
    assert clustering_error(test_ids, test_labels, 3, mapping=mapping) == pytest.approx(2 / 5)
    assert clustering_error(test_ids, test_labels, 3) == 0.0
    assert clustering_error(test_ids, test_labels, 3, mapping=[-1, 2, 2]) == pytest.approx(4 / 5)


@pytest.mark.parametrize(
    "scores, labels, match",
    [
        (torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64),
         r"validation_scores must be floating-point q\(y\|x\) of shape \[N, K\]"),
        (torch.zeros(3, 2), torch.zeros(4, dtype=torch.int64),
         "validation_scores and validation_labels must have the same number of rows"),
        (torch.full((2, 2), float("nan")), torch.zeros(2, dtype=torch.int64), "NaN"),
    ],
)
def test_paper_mapping_bad_inputs(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        paper_cluster_mapping(scores, labels)


def test_clustering_error_rejects_a_mapping_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"mapping must be integer labels of shape \[num_clusters=3\]"):
        clustering_error(torch.tensor([0, 1]), torch.tensor([0, 1]), 3, mapping=[0, 1])


def test_clustering_error_is_classification_error_of_the_mapping():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 10, (1000,), generator=g)
    ids = torch.where(torch.rand(1000, generator=g) < 0.7, labels + 3,
                      torch.randint(0, 16, (1000,), generator=g))
    mapping = cluster_to_label_mapping(ids, labels, 16)
    assert clustering_error(ids, labels, 16) == classification_error(mapping[ids], labels)
    assert 0.0 < clustering_error(ids, labels, 16) < 0.5


def test_clustering_from_scores():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    labels = torch.tensor([4, 2, 7, 2])  # cluster 0 holds 4 and 2: one error
    assert clustering_error(scores, labels, 3) == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"as scores must have shape \[N, num_clusters=4\]"):
        clustering_error(scores, labels, 4)


@pytest.mark.parametrize(
    "pred, labels, err, match",
    [
        (torch.zeros(4, dtype=torch.int64), torch.zeros(5, dtype=torch.int64), ValueError,
         "predictions and labels must have the same number of rows N: "
         "predictions has 4, labels has 5"),
        (torch.zeros(4, dtype=torch.int64), torch.zeros(4), TypeError,
         "labels must have an integer dtype, got torch.float32"),
        (torch.zeros(4, dtype=torch.int64), torch.zeros(4, 1, dtype=torch.int64), ValueError,
         r"labels must have shape \[N\], got shape \(4, 1\)"),
        (torch.zeros(4), torch.zeros(4, dtype=torch.int64), ValueError,
         r"predictions must be integer labels of shape \[N\] or floating-point scores of shape "
         r"\[N, C\], got shape \(4,\) with dtype torch.float32"),
        (torch.zeros(4, 3, dtype=torch.int64), torch.zeros(4, dtype=torch.int64), ValueError,
         "predictions must be integer labels"),
        (torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), ValueError,
         "N >= 1"),
        (torch.zeros(2, dtype=torch.int64), torch.tensor([0, -1]), ValueError,
         "labels must be non-negative, got minimum -1"),
        (torch.zeros(2, dtype=torch.bool), torch.zeros(2, dtype=torch.int64), ValueError,
         "dtype torch.bool"),
        ("abc", torch.zeros(2, dtype=torch.int64), (TypeError, ValueError), "predictions"),
    ],
)
def test_classification_bad_inputs(pred, labels, err, match):
    with pytest.raises(err, match=match):
        classification_error(pred, labels)


@pytest.mark.parametrize(
    "ids, labels, k, err, match",
    [
        (torch.tensor([0, 3]), torch.tensor([0, 1]), 3, ValueError,
         r"cluster_ids must lie in \[0, num_clusters=3\), got maximum 3"),
        (torch.tensor([0, -1]), torch.tensor([0, 1]), 3, ValueError,
         "cluster_ids must be non-negative"),
        (torch.tensor([0, 1]), torch.tensor([0, 1, 1]), 3, ValueError,
         "cluster_ids and labels must have the same number of rows N: cluster_ids has 2"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), 0, ValueError,
         "num_clusters must be a positive int, got 0"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), 2.0, ValueError, "num_clusters"),
        (torch.tensor([0.0, 1.0]), torch.tensor([0, 1]), 2, ValueError, "cluster_ids must be"),
    ],
)
def test_clustering_bad_inputs(ids, labels, k, err, match):
    with pytest.raises(err, match=match):
        cluster_to_label_mapping(ids, labels, k)
    with pytest.raises(err, match=match):
        clustering_error(ids, labels, k)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs():
    labels = torch.tensor([0, 1, 1, 2], device="cuda")
    ids = torch.tensor([2, 0, 0, 1], device="cuda")
    assert clustering_error(ids, labels, 3) == 0.0
    assert cluster_to_label_mapping(ids, labels, 3).device.type == "cuda"
    assert classification_error(labels, labels.cpu()) == 0.0
