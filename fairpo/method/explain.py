"""Small, tested helpers for the classroom walkthrough (``notebooks/method.ipynb``)."""

from __future__ import annotations

import math

import pandas as pd
import torch

from fairpo.method import losses


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def pair_gradients(score_preferred: float, score_dispreferred: float, *, beta: float = 0.5,
                   gamma: float = 0.25, lam: float = 1.0, ref_shift: float = 0.0) -> pd.DataFrame:
    """Loss and logit gradients of one (preferred, dispreferred) pair under BCE and each preference loss.

    The pair is a true positive ``l`` (score ``score_preferred``) against a confusing negative ``k``
    (``score_dispreferred``). BCE treats the two labels separately (the sum of their BCEs); the
    preference losses see the pair. For DPO the reference scores are the same pair's logits shifted
    by ``ref_shift``. Returns one row per loss with columns ``loss``, ``grad_preferred`` and
    ``grad_dispreferred`` (d loss / d logit).
    """
    rows = {}
    for name in ("bce", "dpo", "simpo", "cpo"):
        z = torch.tensor([[logit(score_preferred), logit(score_dispreferred)]], dtype=torch.float64,
                         requires_grad=True)
        y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        if name == "bce":
            loss = losses.bce(z, y).sum()
        else:
            loss = losses.preference_loss(name, z[:, 0], z[:, 1], z[:, 0].detach() + ref_shift,
                                          z[:, 1].detach() + ref_shift, beta=beta, gamma=gamma).sum()
            if name == "cpo":
                loss = loss + lam * losses.bce(z[:, :1], y[:, :1]).sum()
        loss.backward()
        rows[name] = {"loss": loss.item(), "grad_preferred": z.grad[0, 0].item(),
                      "grad_dispreferred": z.grad[0, 1].item()}
    return pd.DataFrame.from_dict(rows, orient="index")


# ---------------------------------------------------------------- the walkthrough's exercises


def _exercise_confusing_set() -> set[int]:
    z = torch.tensor([[2.0, -1.0, 0.5, 1.5]])
    y = torch.tensor([[0.0, 1.0, 0.0, 1.0]])
    return set(losses.confusing_mask(z, y, [1])[0, 0].nonzero().flatten().tolist())


def _exercise_first_alpha() -> float:
    from fairpo.method.group_weights import GroupWeights

    weights = GroupWeights(mode="scaled", step_size=0.05)
    return round(float(weights.update(torch.tensor([1.2, 0.4]))[0]), 3)


def _exercise_hardest_push() -> str:
    table = pair_gradients(0.8, 0.7)
    return str(table.drop(index="bce")["grad_dispreferred"].idxmax())


EXERCISES = {
    "confusing set": _exercise_confusing_set,
    "first alpha": _exercise_first_alpha,
    "hardest push": _exercise_hardest_push,
}
"""The walkthrough's exercises, each answered by the library itself (so the answer is never typed in)."""


def check(exercise: str, answer) -> str:
    """Compare a reader's ``answer`` to the exercise's, without revealing it: "correct", "not answered
    yet" (``None``) or "not yet" with a hint of what kind of answer is expected."""
    if exercise not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise!r}; choose one of: {', '.join(EXERCISES)}")
    if answer is None:
        return f"{exercise}: not answered yet"
    expected = EXERCISES[exercise]()
    if isinstance(expected, float):
        correct = isinstance(answer, (int, float)) and abs(float(answer) - expected) < 5e-4
    elif isinstance(expected, set):
        correct = set(answer) == expected if isinstance(answer, (set, list, tuple)) else False
    else:
        correct = str(answer).strip().lower() == expected
    hint = {float: "a number, to 3 decimals", set: "a set of label indices", str: "a variant name"}[type(expected)]
    return f"{exercise}: correct" if correct else f"{exercise}: not yet (expected {hint})"
