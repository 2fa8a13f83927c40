"""The feature cache: computed once, reused, rebuilt on a new key, never left half-written."""

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from fairpo.data.cache import FeatureDataset, cache_key, cached_features
from fairpo.data import load_dataset


class CountingEncoder(nn.Module):
    """A fixed random projection that counts its calls and remembers the mode it ran in."""

    def __init__(self, d_in=6, d_out=4, tokens=None, fail_on_call=None):
        super().__init__()
        self.proj = nn.Linear(d_in, d_out)
        self.tokens, self.fail_on_call = tokens, fail_on_call
        self.calls, self.modes, self.grad_enabled = 0, [], []

    def forward(self, x):
        self.calls += 1
        self.modes.append(self.training)
        self.grad_enabled.append(torch.is_grad_enabled())
        if self.fail_on_call == self.calls:
            raise RuntimeError("encoder died midway")
        out = self.proj(x)
        return out if self.tokens is None else out.unsqueeze(1).expand(-1, self.tokens, -1) * torch.arange(
            1, self.tokens + 1).view(1, -1, 1)


@pytest.fixture
def dataset():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=g)
    y = (torch.rand(50, 3, generator=g) < 0.3).float()
    return FeatureDataset(x, y)


def test_second_call_reuses_the_cache_and_equals_the_encoder(tmp_path, dataset):
    encoder = CountingEncoder()
    first = cached_features(dataset, encoder, key={"backbone": "toy"}, cache_dir=tmp_path, batch_size=16)
    assert encoder.calls == 4  # ceil(50 / 16) batches
    again = cached_features(dataset, encoder, key={"backbone": "toy"}, cache_dir=tmp_path, batch_size=16)
    assert encoder.calls == 4  # not run again
    with torch.no_grad():
        expected = encoder.proj(dataset.features)
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(again, expected)
    assert first.dtype == torch.float32 and first.shape == (50, 4)
    assert len(list(tmp_path.glob("*.npy"))) == 1


def test_runs_in_eval_mode_without_grad_and_restores_the_mode(tmp_path, dataset):
    encoder = CountingEncoder()
    encoder.train()
    cached_features(dataset, encoder, key={"k": 1}, cache_dir=tmp_path, batch_size=64)
    assert encoder.modes == [False] and encoder.grad_enabled == [False]
    assert encoder.training


def test_a_changed_key_or_dataset_rebuilds(tmp_path, dataset):
    encoder = CountingEncoder()
    cached_features(dataset, encoder, key={"backbone": "a", "blocks": 1}, cache_dir=tmp_path, batch_size=64)
    cached_features(dataset, encoder, key={"blocks": 1, "backbone": "a"}, cache_dir=tmp_path, batch_size=64)
    assert encoder.calls == 1  # key order does not matter
    cached_features(dataset, encoder, key={"backbone": "a", "blocks": 2}, cache_dir=tmp_path, batch_size=64)
    assert encoder.calls == 2
    other = FeatureDataset(dataset.features, 1 - dataset.labels)  # same length, other content
    cached_features(other, encoder, key={"backbone": "a", "blocks": 2}, cache_dir=tmp_path, batch_size=64)
    assert encoder.calls == 3
    assert len(list(tmp_path.glob("*.npy"))) == 3
    # the sidecar records the caller's key
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert {r["key"]["blocks"] for r in records} == {1, 2}


def test_a_killed_write_leaves_nothing_behind(tmp_path, dataset):
    dying = CountingEncoder(fail_on_call=2)
    with pytest.raises(RuntimeError, match="midway"):
        cached_features(dataset, dying, key={"k": "x"}, cache_dir=tmp_path, batch_size=16)
    assert list(tmp_path.iterdir()) == []
    healthy = CountingEncoder()
    healthy.load_state_dict(dying.state_dict())
    out = cached_features(dataset, healthy, key={"k": "x"}, cache_dir=tmp_path, batch_size=16)
    assert healthy.calls == 4
    with torch.no_grad():
        torch.testing.assert_close(out, healthy.proj(dataset.features))


def test_float16_storage_and_token_outputs(tmp_path, dataset):
    encoder = CountingEncoder(tokens=3)
    half = cached_features(dataset, encoder, key={"k": 1}, cache_dir=tmp_path, dtype=torch.float16, batch_size=20)
    full = cached_features(dataset, encoder, key={"k": 1}, cache_dir=tmp_path, batch_size=20)
    assert half.dtype == torch.float16 and half.shape == (50, 3, 4)
    assert encoder.calls == 6  # float16 and float32 are separate caches
    torch.testing.assert_close(half.float(), full, atol=2e-3, rtol=2e-3)
    small, large = sorted(p.stat().st_size for p in tmp_path.glob("*.npy"))
    assert small < 0.6 * large
    with pytest.raises(ValueError, match="float32 or torch.float16"):
        cached_features(dataset, encoder, key={"k": 1}, cache_dir=tmp_path, dtype=torch.bfloat16)


def mapped_from(tensor, path):
    """Whether the tensor's memory lies in a mapping of ``path`` (Linux's /proc/self/maps)."""
    target, ptr = os.path.realpath(path), tensor.data_ptr()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and os.path.realpath(fields[5]) == target:
                low, high = (int(a, 16) for a in fields[0].split("-"))
                if low <= ptr < high:
                    return True
    return False


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux's /proc/self/maps")
def test_cache_is_memory_mapped_copy_on_write(tmp_path, dataset):
    encoder = CountingEncoder()
    out = cached_features(dataset, encoder, key={"k": 1}, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npy")
    on_disk = np.load(path)
    np.testing.assert_array_equal(out.numpy(), on_disk)
    reused = cached_features(dataset, encoder, key={"k": 1}, cache_dir=tmp_path)
    assert mapped_from(out, path) and mapped_from(reused, path)
    out[0] = 123.0  # writes to the returned tensor stay in memory
    assert not np.any(np.load(path)[0] == 123.0)
    loaded = cached_features(dataset, encoder, key={"k": 1}, cache_dir=tmp_path, in_memory=True)
    assert encoder.calls == 1 and not mapped_from(loaded, path)
    np.testing.assert_array_equal(loaded.numpy(), on_disk)


def test_a_digits_split_is_cached_whole_and_named_by_its_content(tmp_path):
    first, other = (load_dataset("digits", seed=seed, num_train=40, num_test=10) for seed in (0, 1))
    flat = nn.Flatten()
    cached = cached_features(first.test, flat, key={"k": 1}, cache_dir=tmp_path)
    torch.testing.assert_close(cached, flat(first.test[torch.arange(10)][0]))
    cached_features(other.test, flat, key={"k": 1}, cache_dir=tmp_path)  # same key and length, other canvases
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_feature_dataset_views_and_batches():
    features = torch.arange(30.0).view(10, 3).half()
    labels = torch.eye(4)[[0, 1, 2, 3, 0]]
    rows = torch.tensor([9, 0, 4, 4, 7])
    ds = FeatureDataset(features, labels, rows)
    assert len(ds) == 5
    for i in range(5):
        x, y = ds[i]
        assert x.dtype == torch.float32 and torch.equal(x, features[rows[i]].float()) and torch.equal(y, labels[i])
    xb, yb = ds[torch.tensor([4, 1])]
    assert torch.equal(xb, features[[7, 0]].float()) and torch.equal(yb, labels[[4, 1]])
    with pytest.raises(ValueError, match="indices"):
        FeatureDataset(features, labels, torch.tensor([0, 1, 2, 3, 10]))
    with pytest.raises(ValueError, match="rows"):
        FeatureDataset(features, labels)


def test_cache_key_is_order_free_and_rejects_empty():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})
    with pytest.raises(ValueError, match="non-empty dict"):
        cache_key({})
