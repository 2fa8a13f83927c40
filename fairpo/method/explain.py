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
