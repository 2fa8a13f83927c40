"""Tests for fairpo.method.metrics against sklearn and literal loops written from the definitions, and for the
released code's per-batch averaging the audit compares them with (fairpo.report.audit)."""

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score
from torchmetrics.functional.classification import multilabel_average_precision

from fairpo.method.checks import privileged_mask
from fairpo.method.metrics import (
    accuracy,
    average_precision,
    batched_average_precision,
    group_metrics,
    predict,
    sample_f1,
)
from fairpo.report.audit import batch_averaged_metrics

# ---------------------------------------------------------------- literal references


def literal_ap(scores, labels):
    """AP of one label from the definition: mean over positives of the precision at their score.

    precision(t) counts every sample scoring >= t, so tied samples share one threshold.
    """
    scores, labels = list(map(float, scores)), list(map(int, labels))
    positives = [i for i, y in enumerate(labels) if y == 1]
    if not positives:
        return math.nan
    total = 0.0
    for i in positives:
        above = [j for j in range(len(scores)) if scores[j] >= scores[i]]
        total += sum(labels[j] for j in above) / len(above)
    return total / len(positives)


def literal_sample_f1(preds, labels, empty):
    values = []
    for p_row, y_row in zip(preds.tolist(), labels.tolist()):
        tp = sum(1 for p, y in zip(p_row, y_row) if p and y)
        n_pred, n_true = sum(map(bool, p_row)), sum(map(bool, y_row))
        if n_pred == 0 and n_true == 0:
            if empty == "exclude":
                continue
            values.append(1.0 if empty == "one" else 0.0)
            continue
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_true if n_true else 0.0
        values.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    return sum(values) / len(values) if values else math.nan


def random_problem(n=200, t=8, seed=0, tie_levels=None):
    gen = torch.Generator().manual_seed(seed)
    prevalence = torch.linspace(0.03, 0.5, t)
    labels = (torch.rand(n, t, generator=gen) < prevalence).long()
    logits = 1.5 * labels + torch.randn(n, t, generator=gen, dtype=torch.float64) - 1.0
    if tie_levels is not None:
        logits = torch.round(logits * tie_levels) / tie_levels  # many exact ties
    return logits, labels


def sklearn_group(logits, labels, columns, zero_division):
    """Dataset-level group metrics computed with sklearn / numpy only."""
    z, y = logits.numpy()[:, columns], labels.numpy()[:, columns]
    aps = [average_precision_score(y[:, j], z[:, j]) for j in range(y.shape[1]) if y[:, j].any()]
    preds = (z >= 0).astype(int)
    return {
        "mAP": float(np.mean(aps)) if aps else math.nan,
        "f1": f1_score(y, preds, average="samples", zero_division=zero_division),
        "accuracy": float((preds == y).mean()),
    }


# ---------------------------------------------------------------- average precision


def test_ap_hand_example():
    # ranking: pos, neg, pos, neg -> precisions at the positives 1/1 and 2/3
    scores = torch.tensor([[0.9], [0.8], [0.7], [0.6]])
    labels = torch.tensor([[1], [0], [1], [0]])
    assert average_precision(scores, labels).item() == pytest.approx((1 + 2 / 3) / 2, abs=1e-7)


def test_ap_ties_share_one_threshold():
    # a positive tied with a negative gets precision 1/2, not 1 (no optimistic tie-breaking)
    scores = torch.tensor([[0.5, 2.0], [0.5, 2.0], [0.1, 1.0]])
    labels = torch.tensor([[1, 0], [0, 1], [0, 1]])
    ap = average_precision(scores, labels)
    assert ap[0].item() == pytest.approx(0.5, abs=1e-7)
    # second label: scores 2, 2, 1 with labels 0, 1, 1 -> (1/2 + 2/3) / 2
    assert ap[1].item() == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-7)


@pytest.mark.parametrize("tie_levels", [None, 2])
def test_ap_matches_sklearn_and_literal(tie_levels):
    logits, labels = random_problem(n=150, t=6, seed=1, tie_levels=tie_levels)
    ours = average_precision(logits, labels)
    for j in range(labels.shape[1]):
        expected = average_precision_score(labels[:, j].numpy(), logits[:, j].numpy())
        # torchmetrics accumulates its curve in float32
        assert ours[j].item() == pytest.approx(expected, abs=1e-6)
        assert ours[j].item() == pytest.approx(literal_ap(logits[:, j], labels[:, j]), abs=1e-6)


def test_ap_probabilities_and_logits_agree():
    logits, labels = random_problem(seed=2)
    torch.testing.assert_close(
        average_precision(logits, labels), average_precision(torch.sigmoid(logits), labels)
    )


def test_ap_no_positive_is_nan_where_torchmetrics_gives_zero():
    scores = torch.tensor([[0.2, 0.9], [0.8, 0.1], [0.4, 0.3]])
    labels = torch.tensor([[0, 1], [0, 0], [0, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = multilabel_average_precision(scores, labels, num_labels=2, average=None)
    assert raw[0].item() == 0.0  # what we guard against: a 0 that would pull mAP down
    ours = average_precision(scores, labels)
    assert math.isnan(ours[0].item())
    assert ours[1].item() == pytest.approx(1.0)


def test_ap_large_logits_are_not_tied_by_a_sigmoid():
    # float32 sigmoid(20) == sigmoid(30) == 1.0; torchmetrics would sigmoid these logits
    logits = torch.tensor([[30.0], [20.0], [25.0]])
    labels = torch.tensor([[1], [0], [1]])
    assert torch.sigmoid(logits).unique().numel() == 1
    assert average_precision(logits, labels).item() == pytest.approx(1.0)
    assert average_precision_score([1, 0, 1], [30.0, 20.0, 25.0]) == 1.0


def test_batched_ap_equals_sklearn_per_batch():
    logits, labels = random_problem(n=96, t=5, seed=3, tie_levels=2)
    ours = batched_average_precision(logits.view(3, 32, 5), labels.view(3, 32, 5))
    for b in range(3):
        for j in range(5):
            y = labels[32 * b: 32 * (b + 1), j].numpy()
            z = logits[32 * b: 32 * (b + 1), j].numpy()
            if y.any():
                assert ours[b, j].item() == pytest.approx(average_precision_score(y, z), abs=1e-12)
            else:
                assert math.isnan(ours[b, j].item())


# ---------------------------------------------------------------- thresholds, F1, accuracy


def test_predict_boundary_and_why_logit_space():
    logits = torch.tensor([[0.0, -1e-9, 1e-9]])
    assert predict(logits).tolist() == [[True, False, True]]
    # in probability space float32 rounds sigmoid(-1e-9) up to exactly 0.5
    assert torch.sigmoid(torch.tensor(-1e-9)).item() == 0.5


def test_sample_f1_hand_example():
    preds = torch.tensor([[1, 1, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]])
    labels = torch.tensor([[1, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]])
    # per sample: 2*1/(2+1+0)=2/3, empty, 0, 0
    assert sample_f1(preds, labels, empty="one") == pytest.approx((2 / 3 + 1) / 4)
    assert sample_f1(preds, labels, empty="zero") == pytest.approx((2 / 3) / 4)
    assert sample_f1(preds, labels, empty="exclude") == pytest.approx((2 / 3) / 3)


@pytest.mark.parametrize("empty,zero_division", [("one", 1), ("zero", 0)])
def test_sample_f1_matches_sklearn(empty, zero_division):
    logits, labels = random_problem(n=300, t=4, seed=4)
    preds = predict(logits)
    expected = f1_score(labels.numpy(), preds.numpy().astype(int), average="samples",
                        zero_division=zero_division)
    assert sample_f1(preds, labels, empty=empty) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("empty", ["one", "zero", "exclude"])
def test_sample_f1_matches_literal_loop(empty):
    logits, labels = random_problem(n=120, t=3, seed=5)
    preds = predict(logits)
    assert sample_f1(preds, labels, empty) == pytest.approx(
        literal_sample_f1(preds, labels, empty), abs=1e-12
    )


def test_sample_f1_perfect_predictor_only_scores_one_under_one_and_exclude():
    labels = torch.tensor([[1, 0], [0, 0], [0, 1]])
    assert sample_f1(labels.bool(), labels, "one") == 1.0
    assert sample_f1(labels.bool(), labels, "exclude") == 1.0
    assert sample_f1(labels.bool(), labels, "zero") == pytest.approx(2 / 3)


def test_sample_f1_exclude_with_nothing_left_is_nan():
    zeros = torch.zeros(3, 2, dtype=torch.long)
    assert math.isnan(sample_f1(zeros, zeros, "exclude"))


def test_sample_f1_refuses_float_predictions():
    with pytest.raises(ValueError, match="hard predictions"):
        sample_f1(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long))


def test_accuracy_hand_example():
    preds = torch.tensor([[1, 0, 0], [1, 1, 1]])
    labels = torch.tensor([[1, 1, 0], [0, 1, 1]])
    assert accuracy(preds, labels) == pytest.approx(4 / 6)


# ---------------------------------------------------------------- groups


@pytest.mark.parametrize("empty,zero_division", [("one", 1), ("zero", 0)])
def test_group_metrics_match_sklearn_on_each_group(empty, zero_division):
    logits, labels = random_problem(n=250, t=8, seed=6)
    labels[:, 0] = 0  # a privileged label with no positive: left out of mAP(P)
    privileged = [0, 1, 5]
    ours = group_metrics(logits, labels, privileged, empty=empty)
    columns = {"privileged": privileged, "non_privileged": [2, 3, 4, 6, 7],
               "overall": list(range(8))}
    for group, cols in columns.items():
        expected = sklearn_group(logits, labels, cols, zero_division)
        for name, value in expected.items():
            assert isinstance(ours[group][name], float)
            assert 0.0 <= ours[group][name] <= 1.0
            assert ours[group][name] == pytest.approx(value, abs=1e-6), (group, name)


def test_group_metrics_mask_and_index_forms_agree_and_per_label():
    logits, labels = random_problem(seed=7)
    mask = torch.zeros(8, dtype=torch.bool)
    mask[[2, 6]] = True
    by_index = group_metrics(logits, labels, [6, 2], per_label=True)
    by_mask = group_metrics(logits, labels, mask, per_label=True)
    assert by_index == by_mask
    assert len(by_index["per_label_ap"]) == 8
    assert by_index["privileged"]["mAP"] == pytest.approx(
        (by_index["per_label_ap"][2] + by_index["per_label_ap"][6]) / 2
    )


def test_group_metrics_empty_group_is_nan():
    logits, labels = random_problem(seed=8)
    out = group_metrics(logits, labels, list(range(8)))
    assert all(math.isnan(v) for v in out["non_privileged"].values())
    assert out["privileged"] == out["overall"]
    out = group_metrics(logits, labels, [])
    assert all(math.isnan(v) for v in out["privileged"].values())


def test_group_without_any_positive_has_nan_map_but_defined_f1_and_accuracy():
    logits = torch.tensor([[-1.0, 2.0], [1.0, -2.0]])
    labels = torch.tensor([[0, 1], [0, 0]])
    out = group_metrics(logits, labels, [0])
    assert math.isnan(out["privileged"]["mAP"])
    assert out["privileged"]["accuracy"] == 0.5
    assert out["privileged"]["f1"] == 0.5  # sample 0 empty (1.0), sample 1 a false positive (0)


@pytest.mark.parametrize(
    "logits,labels,privileged,message",
    [
        (torch.zeros(3, 2), torch.zeros(3, 3), [0], r"labels have shape \(3, 3\) but logits have \(3, 2\)"),
        (torch.zeros(3, 2), torch.tensor([[0, 2]] * 3), [0], "labels must be 0 or 1"),
        (torch.zeros(3, 2), torch.zeros(3, 2), [2], r"outside \[0, 2\)"),
        (torch.zeros(3, 2), torch.zeros(3, 2), [-1], r"outside \[0, 2\)"),
        (torch.zeros(3, 2), torch.zeros(3, 2), [1, 1], "repeat"),
        (torch.zeros(3, 2), torch.zeros(3, 2), torch.tensor([True]), "mask"),
        (torch.tensor([[math.nan, 0.0]]), torch.zeros(1, 2), [0], "NaN"),
        (torch.zeros(0, 2), torch.zeros(0, 2), [0], "at least one sample"),
        (torch.zeros(3), torch.zeros(3), [0], r"\(batch, labels\)"),
    ],
)
def test_group_metrics_validation(logits, labels, privileged, message):
    with pytest.raises(ValueError, match=message):
        group_metrics(logits, labels, privileged)
    with pytest.raises(ValueError, match=message):
        batch_averaged_metrics(logits, labels, privileged)


def test_privileged_mask_accepts_index_tensor():
    assert privileged_mask(torch.tensor([3, 0]), 4).tolist() == [True, False, False, True]


# ---------------------------------------------------------------- the released per-batch averaging


def test_batch_averaging_inflates_map_hand_example():
    # One label, batches of two. Dataset ranking: 4(neg) 3(pos) 2(neg) 1(pos):
    # AP = (1/2 + 2/4) / 2 = 0.5. Batch 1 = {3 pos, 2 neg}: AP 1; batch 2 = {4 neg, 1 pos}: AP 1/2.
    logits = torch.tensor([[3.0], [2.0], [4.0], [1.0]])
    labels = torch.tensor([[1], [0], [0], [1]])
    dataset = group_metrics(logits, labels, [0])["privileged"]["mAP"]
    batched = batch_averaged_metrics(logits, labels, [0], batch_size=2)["privileged"]["mAP"]
    assert dataset == pytest.approx(0.5)
    assert batched == pytest.approx(0.75)


def test_batch_without_positives_counts_zero_or_is_skipped():
    # batch 1 has a positive (AP 1), batch 2 none: released code averages 1 and 0
    logits = torch.tensor([[2.0], [1.0], [3.0], [4.0]])
    labels = torch.tensor([[1], [0], [0], [0]])
    zero = batch_averaged_metrics(logits, labels, [0], batch_size=2)
    skip = batch_averaged_metrics(logits, labels, [0], batch_size=2, no_positive_batch="skip")
    assert zero["privileged"]["mAP"] == pytest.approx(0.5)
    assert skip["privileged"]["mAP"] == pytest.approx(1.0)


def test_batch_averaging_weights_the_short_last_batch_by_size():
    # batches {pos 2, neg 1, neg 0} (AP 1) and {neg 5} (no positive -> 0): (1*3 + 0*1) / 4
    logits = torch.tensor([[2.0], [1.0], [0.0], [5.0]])
    labels = torch.tensor([[1], [0], [0], [0]])
    out = batch_averaged_metrics(logits, labels, [0], batch_size=3)
    assert out["privileged"]["mAP"] == pytest.approx(0.75)


def reference_batch_averaged(logits, labels, columns, batch_size):
    """The released procedure, literally: sklearn per batch, weighted by batch size."""
    z, y = logits.numpy()[:, columns], labels.numpy()[:, columns]
    totals = {"mAP": 0.0, "f1": 0.0, "accuracy": 0.0}
    for start in range(0, len(z), batch_size):
        zb, yb = z[start:start + batch_size], y[start:start + batch_size]
        aps = [average_precision_score(yb[:, j], zb[:, j]) for j in range(yb.shape[1])
               if yb[:, j].any()]
        preds = (zb >= 0).astype(int)
        totals["mAP"] += (float(np.mean(aps)) if aps else 0.0) * len(zb)
        totals["f1"] += f1_score(yb, preds, average="samples", zero_division=0) * len(zb)
        totals["accuracy"] += float((preds == yb).mean()) * len(zb)
    return {k: v / len(z) for k, v in totals.items()}


def test_batch_averaged_matches_literal_released_procedure():
    logits, labels = random_problem(n=210, t=8, seed=9, tie_levels=3)  # 6 batches + 18 left
    privileged = [0, 1]
    ours = batch_averaged_metrics(logits, labels, privileged, batch_size=32)
    columns = {"privileged": [0, 1], "non_privileged": list(range(2, 8)),
               "overall": list(range(8))}
    for group, cols in columns.items():
        expected = reference_batch_averaged(logits, labels, cols, 32)
        for name, value in expected.items():
            assert ours[group][name] == pytest.approx(value, abs=1e-12), (group, name)


def test_batch_averaging_leaves_accuracy_and_f1_unchanged_but_moves_map():
    logits, labels = random_problem(n=320, t=8, seed=10)
    dataset = group_metrics(logits, labels, [0, 1], empty="zero")
    batched = batch_averaged_metrics(logits, labels, [0, 1], batch_size=32, empty="zero")
    for group in ("privileged", "non_privileged", "overall"):
        assert batched[group]["accuracy"] == pytest.approx(dataset[group]["accuracy"], abs=1e-12)
        assert batched[group]["f1"] == pytest.approx(dataset[group]["f1"], abs=1e-12)
    assert batched["non_privileged"]["mAP"] > dataset["non_privileged"]["mAP"] + 0.01


def test_one_batch_equals_dataset_level():
    logits, labels = random_problem(n=64, seed=11)
    dataset = group_metrics(logits, labels, [0, 3], empty="exclude")
    batched = batch_averaged_metrics(logits, labels, [0, 3], batch_size=1000, empty="exclude",
                                     no_positive_batch="skip")
    for group in dataset:
        assert set(batched[group]) == {"mAP", "f1", "accuracy"}  # the released code's three metrics
        for name in batched[group]:
            assert batched[group][name] == pytest.approx(dataset[group][name], abs=1e-6)


def test_dead_heads_are_the_labels_with_a_constant_logit():
    from fairpo.method.metrics import dead_heads

    logits = torch.tensor([[0.3, -1.0, 2.0, 5.0], [0.3, -1.0, 2.5, 5.0], [0.3, -0.9, 2.0, 5.0]])
    assert dead_heads(logits) == [0, 3]
    assert dead_heads(torch.zeros(5, 2)) == [0, 1] and dead_heads(torch.eye(3)) == []


def test_per_label_f1_by_hand_and_the_undefined_label():
    from fairpo.method.metrics import per_label_f1

    preds = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)
    labels = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 0]], dtype=torch.bool)
    f1 = per_label_f1(preds, labels)
    # label 0: TP 1, FP 1, FN 1 -> 2/4; label 1: TP 1, FN 1 -> 2/3; label 2: nothing true or predicted
    assert f1[0].item() == pytest.approx(0.5) and f1[1].item() == pytest.approx(2 / 3) and math.isnan(f1[2].item())


def test_macro_f1_exposes_a_model_that_never_predicts_the_rare_labels():
    from fairpo.method.metrics import group_metrics

    labels = torch.zeros(10, 4)
    labels[:, 0] = 1
    labels[0, 3] = labels[1, 3] = 1  # label 3 (privileged) is rare: 2 of 10 samples
    logits = torch.where(labels.bool(), 3.0, -3.0)
    logits[:, 3] = -4.0  # never predicted
    out = group_metrics(logits, labels, [3])
    assert out["privileged"]["f1"] == pytest.approx(0.8)  # the 8 samples without label 3 score 1
    assert out["privileged"]["macro_f1"] == 0.0
    assert out["non_privileged"]["macro_f1"] == pytest.approx(1.0)  # labels 1, 2 undefined, left out
