"""Every random stream of a run, each from its own explicitly seeded generator.

A stream is named by a key such as ``(data_seed, seed, "heads", "reference")``; its seed is a hash of
that key, so two streams never share numbers by accident (seed 1 of one stream is not seed 0 of another
shifted by one) and nothing depends on torch's global random state — in particular not on whether the
digits backbone was pretrained in the same process, or on which job of the grid built the caches.

Streams used by the trainer (``fairpo.run.train``):

| purpose | key | what it draws |
| --- | --- | --- |
| ``heads`` | (data seed, run seed, "heads", family) | the heads' initialisation; ``family`` is ``reference`` for runs without a reference (BCE, focal, Group DRO) and ``fairpo`` for FairPO runs, so a FairPO run's fresh heads never equal its reference's initial heads |
| ``order`` | (data seed, run seed, "order", epoch) | the batch order of one epoch (shared by every method of a seed: common random numbers for paired comparisons) |
| ``draws`` | (data seed, run seed, "draws", rank) | the confusing counterparts |
| ``backbone`` | ("digits-backbone", recipe seed) | the digits ViT's initialisation and pretraining |
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Iterator

import torch


def seed_for(*key) -> int:
    """A 63-bit seed from a key of strings and integers (SHA-256 of its JSON form)."""
    digest = hashlib.sha256(json.dumps([str(k) if not isinstance(k, int) else k for k in key]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(*key, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded from ``key`` (see :func:`seed_for`)."""
    return torch.Generator(device=device).manual_seed(seed_for(*key))


@contextlib.contextmanager
def private_global_rng(*key) -> Iterator[None]:
    """Run code that can only draw from torch's global generator (a library's module constructors) on
    a stream of its own: the global state is seeded from ``key`` inside and restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for(*key))
        yield
