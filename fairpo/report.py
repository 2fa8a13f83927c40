"""Tables and plots. Plot functions take data and an optional ``ax`` and return the figure."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap

from fairpo import losses


def plot_confusing_sets(logits: torch.Tensor, labels: torch.Tensor, privileged: Sequence[int],
                        label_names: Sequence[str] | None = None, ax=None):
    """Every privileged pair (sample i, label l) as a row; each label k coloured by its role in S_il.

    Cells: the pair's own label (grey), a confusing negative (red: a negative scored at least as high as
    a positive l), a confusing positive (blue: a positive scored at most as high as a negative l), any
    other label (white). Each cell shows the label's score σ(z_ik) and a ``+`` for a true label.
    """
    mask = losses.confusing_mask(logits, labels, privileged)  # (B, |P|, T)
    B, P, T = mask.shape
    role = np.zeros((B * P, T), dtype=int)
    scores = torch.sigmoid(logits).detach().cpu().numpy()
    y = labels.cpu().numpy()
    rows = []
    for i in range(B):
        for a, l in enumerate(privileged):
            r = i * P + a
            role[r, l] = 1
            members = mask[i, a].cpu().numpy()
            role[r, members] = 2 if y[i, l] == 1 else 3
            rows.append(f"sample {i}, label {label_names[l] if label_names else l} (y={int(y[i, l])})")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.75 * T, 0.9 + 0.45 * B * P))
    cmap = ListedColormap(["white", "0.75", "#d6604d", "#4393c3"])
    ax.imshow(role, cmap=cmap, vmin=0, vmax=3, aspect="auto")
    for r in range(B * P):
        i = r // P
        for k in range(T):
            mark = "+" if y[i, k] == 1 else ""
            ax.text(k, r, f"{scores[i, k]:.2f}{mark}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(T), label_names if label_names else range(T))
    ax.set_yticks(range(B * P), rows)
    ax.set_xticks(np.arange(-0.5, T), minor=True)
    ax.set_yticks(np.arange(-0.5, B * P), minor=True)
    ax.grid(which="minor", color="0.85")
    ax.tick_params(which="minor", length=0)
    ax.set_title("Confusing sets: red = confusing negatives, blue = confusing positives")
    return ax.figure


def plot_group_weights(history: Sequence[Sequence[float]], losses_history: Sequence[Sequence[float]],
                       names=("privileged", "non-privileged"), ax=None):
    """Group weights α over steps (left axis) with the group losses that drive them (right axis)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.2))
    w = np.asarray(history)
    g = np.asarray(losses_history)
    colors = ["#d6604d", "#4393c3"]
    for j, name in enumerate(names):
        ax.plot(w[:, j], color=colors[j], lw=2, label=f"α {name}")
    ax.set_xlabel("step")
    ax.set_ylabel("group weight α")
    ax.set_ylim(0, 1)
    twin = ax.twinx()
    for j, name in enumerate(names):
        twin.plot(g[:, j], color=colors[j], ls="--", lw=1, label=f"loss {name}")
    twin.set_ylabel("group loss (dashed)")
    ax.legend(loc="upper left", frameon=False)
    return ax.figure
