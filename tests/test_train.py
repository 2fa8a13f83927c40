"""The trainer: determinism, resume, reuse, the reference on demand, NaN handling, every method."""

import math

import pytest
import torch

from fairpo.run import store
from fairpo.run import train as T
from fairpo.run.config import ABLATIONS, RunConfig
from fairpo.method.objective import Objective

TINY = dict(num_train=300, num_test=200)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One backbone and feature cache for the whole module (pretraining runs once)."""
    return tmp_path_factory.mktemp("cache")


def tiny(**changes):
    base = dict(epochs=2, patience=5, lr=1e-3, extra=dict(TINY))
    return RunConfig(**{**base, **changes})


def run(config, results, cache_dir, **kw):
    return T.train(config, results, cache_dir=cache_dir, quiet=True, **kw)


def comparable(record):
    return store.without_timings(record)


def test_same_seed_gives_the_same_record(tmp_path, cache_dir):
    a = run(tiny(variant="cpo"), tmp_path / "a", cache_dir)
    b = run(tiny(variant="cpo"), tmp_path / "b", cache_dir)
    assert comparable(a) == comparable(b)
    steps_a = store.load_history(tmp_path / "a" / a["run_dir"] / "steps.jsonl")
    steps_b = store.load_history(tmp_path / "b" / b["run_dir"] / "steps.jsonl")
    assert steps_a.equals(steps_b)
    c = run(tiny(variant="cpo", seed=1), tmp_path / "a", cache_dir)
    assert c["test"] != a["test"]  # another seed is another run


def test_interrupted_run_resumes_to_the_same_record(tmp_path, cache_dir):
    config = tiny(variant="dpo", epochs=3)
    whole = run(config, tmp_path / "whole", cache_dir)
    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "cut", cache_dir, stop_after_epoch=0)
    folder = tmp_path / "cut" / whole["run_dir"]
    assert (folder / "last.pt").exists() and not store.is_finished(folder)
    resumed = run(config, tmp_path / "cut", cache_dir)
    assert comparable(resumed) == comparable(whole)
    assert not (folder / "last.pt").exists()


def test_finished_run_is_reused_not_retrained(tmp_path, cache_dir, monkeypatch):
    first = run(tiny(variant="bce"), tmp_path, cache_dir)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was retrained")

    monkeypatch.setattr(T, "prepare", no_training)
    assert run(tiny(variant="bce"), tmp_path, cache_dir) == first
    with pytest.raises(AssertionError, match="retrained"):
        run(tiny(variant="bce"), tmp_path, cache_dir, force=True)


def test_fairpo_trains_its_reference_on_demand_and_starts_fresh_by_default(tmp_path, cache_dir):
    record = run(tiny(variant="dpo"), tmp_path, cache_dir)
    assert record["reference"] == "digits/bce/seed0" and record["config"]["init"] == "fresh"
    assert store.is_finished(tmp_path / "digits" / "bce" / "seed0")
    steps = store.load_history(tmp_path / record["run_dir"] / "steps.jsonl")
    # fresh heads are far from the reference: the hinge on the non-privileged labels is active at once
    assert steps.loc[0, "loss_N"] > 0 and steps.loc[0, "active_rate"] > 0.5


def test_init_reference_starts_as_a_copy_of_the_reference(tmp_path, cache_dir):
    record = run(tiny(variant="dpo", init="reference"), tmp_path, cache_dir)
    assert record["run_dir"] == "digits/dpo+from-reference/seed0"
    steps = store.load_history(tmp_path / record["run_dir"] / "steps.jsonl")
    # at the first step the model *is* its reference: every hinge is inactive, L_N is exactly 0
    assert steps.loc[0, "loss_N"] == 0.0 and steps.loc[0, "active_rate"] == 0.0
    assert steps["loss_N"].iloc[1:].max() > 0  # and it is a real constraint once the model moves


def _initial_heads(config, cache_dir):
    prepared = T.prepare(config, cache_dir, torch.device("cpu"))
    return {k: v.clone() for k, v in prepared.network.heads.state_dict().items()}


def test_each_seed_and_each_family_draws_its_own_initial_heads(cache_dir):
    bce0, bce1 = _initial_heads(tiny(variant="bce"), cache_dir), _initial_heads(tiny(variant="bce", seed=1), cache_dir)
    focal0 = _initial_heads(tiny(variant="focal"), cache_dir)
    cpo0, dpo0 = _initial_heads(tiny(variant="cpo"), cache_dir), _initial_heads(tiny(variant="dpo"), cache_dir)
    assert all(torch.equal(bce0[k], focal0[k]) for k in bce0)  # baselines of a seed share their start
    assert all(torch.equal(cpo0[k], dpo0[k]) for k in bce0)    # so do the FairPO variants
    assert not any(torch.equal(bce0[k], bce1[k]) for k in bce0)  # another seed, other weights
    assert not any(torch.equal(bce0[k], cpo0[k]) for k in bce0)  # fresh FairPO heads are not the reference's


def test_a_run_does_not_depend_on_the_global_rng_or_on_what_the_cache_held(tmp_path, cache_dir):
    warm = run(tiny(variant="cpo"), tmp_path / "warm", cache_dir)  # backbone and features already cached
    torch.manual_seed(1234)
    torch.rand(17)  # a disturbed global generator must not matter
    cold = run(tiny(variant="cpo"), tmp_path / "cold", tmp_path / "empty-cache")  # pretrains in-process
    assert comparable(warm) == comparable(cold)
    for name in ("steps.jsonl", "epochs.jsonl"):
        assert store.load_history(tmp_path / "warm" / warm["run_dir"] / name).equals(
            store.load_history(tmp_path / "cold" / cold["run_dir"] / name))


def test_records_say_whether_patience_or_the_budget_stopped_them(tmp_path, cache_dir):
    budget = run(tiny(variant="bce", epochs=1), tmp_path / "a", cache_dir)
    assert budget["stopped"] == "budget" and budget["epochs_run"] == 1
    patient = run(tiny(variant="bce", epochs=50, patience=1, lr=3e-2), tmp_path / "b", cache_dir)
    assert patient["stopped"] == "patience" and patient["epochs_run"] == patient["best_epoch"] + 2


def test_selection_by_privileged_map_picks_the_best_privileged_epoch(tmp_path, cache_dir):
    record = run(tiny(variant="cpo", epochs=4, selection="privileged"), tmp_path, cache_dir)
    epochs = store.load_history(tmp_path / record["run_dir"] / "epochs.jsonl")
    assert record["selection_metric"] == "val.privileged.mAP"
    assert record["best_epoch"] == int(epochs["val.privileged.mAP"].idxmax())
    assert record["validation"]["privileged"]["mAP"] == epochs["val.privileged.mAP"].max()


def test_non_finite_loss_stops_naming_step_and_group_and_keeps_the_checkpoint(tmp_path, cache_dir, monkeypatch):
    config = tiny(variant="cpo", epochs=3)
    run(config.replace(variant="bce"), tmp_path, cache_dir)
    real_step = Objective.step
    calls = {"n": 0}

    def poisoned(self, logits, labels, ref, generator):
        calls["n"] += 1
        total, diag = real_step(self, logits, labels, ref, generator)
        if calls["n"] == 12:  # in the second epoch (270 train canvases / 32 = 9 steps an epoch)
            diag["loss_P"] = torch.tensor(math.nan)  # diagnostics are tensors, read once an epoch
            total = total * math.nan
        return total, diag

    monkeypatch.setattr(Objective, "step", poisoned)
    with pytest.raises(FloatingPointError, match=r"step 11 \(group: privileged\)"):
        run(config, tmp_path, cache_dir)
    folder = tmp_path / "digits" / "cpo" / "seed0"
    assert (folder / "last.pt").exists() and (folder / "best.safetensors").exists()
    assert not store.is_finished(folder)


@pytest.mark.parametrize("variant, ablation", [(v, "none") for v in ("bce", "focal", "gdro", "asl", "dbloss", "simpo")]
                         + [("cpo", a) for a in ABLATIONS])
def test_every_method_trains_with_its_own_objective(tmp_path, cache_dir, variant, ablation):
    record = run(tiny(variant=variant, ablation=ablation, epochs=1), tmp_path, cache_dir)
    steps = store.load_history(tmp_path / record["run_dir"] / "steps.jsonl")
    assert record["status"] == "finished" and math.isfinite(record["test"]["overall"]["mAP"])
    has_alpha = "alpha_P" in steps
    assert has_alpha == (variant in ("gdro", "cpo", "simpo") and ablation != "global")
    if ablation == "no-grpo":
        assert (steps["alpha_P"] == 0.5).all()
    elif has_alpha:
        assert steps["alpha_P"].nunique() > 1
    if ablation == "no-pref":
        assert (steps["preference_rate"] == 0).all()
    if ablation == "no-constraint":
        assert "active_rate" not in steps
    if variant in ("cpo", "simpo") and ablation not in ("no-pref",):
        assert steps["preference_rate"].max() > 0


def test_group_dro_weights_follow_the_larger_group_loss():
    config = RunConfig(variant="gdro", gdro_step_size=1.0)
    objective = Objective(config, [0], 3)
    logits = torch.tensor([[-3.0, 2.0, 2.0]])
    labels = torch.tensor([[1.0, 1.0, 1.0]])  # label 0 (privileged) is badly wrong
    objective.step(logits, labels, None, None)
    assert objective.weights.weights[0] > 0.5


def test_dpo_without_a_reference_has_a_clear_error():
    objective = Objective(RunConfig(variant="dpo"), [0], 3)
    with pytest.raises(ValueError, match="ref_logits"):
        objective.step(torch.zeros(2, 3), torch.ones(2, 3), None, None)


# ---------------------------------------------------------------- a store that refuses stale results


def test_a_finished_run_with_another_configuration_is_refused_and_force_replaces_it(tmp_path, cache_dir):
    first = run(tiny(variant="bce"), tmp_path, cache_dir)
    for changes, field in [(dict(epochs=3), "epochs"), (dict(privileged=(7, 9)), "privileged"),
                           (dict(lr=5e-4), "lr"), (dict(extra=dict(TINY, num_test=150)), "extra")]:
        with pytest.raises(store.StaleRunError, match=rf"{field}: stored .*, asked .*force=True"):
            run(tiny(variant="bce", **changes), tmp_path, cache_dir)
    # what does not shape the result does not count
    assert run(tiny(variant="bce", device="cpu", cpu_threads=2), tmp_path, cache_dir) == first
    # the advice works: force retrains with the new configuration, and the run is then reused as is
    again = run(tiny(variant="bce", epochs=3), tmp_path, cache_dir, force=True)
    assert again["config"]["epochs"] == 3 and again["epochs_run"] == 3
    assert run(tiny(variant="bce", epochs=3), tmp_path, cache_dir) == again


def test_a_damaged_record_names_its_file_and_force_retrains_it(tmp_path, cache_dir):
    record = run(tiny(variant="bce"), tmp_path, cache_dir)
    path = tmp_path / record["run_dir"] / store.RECORD_FILE
    path.write_text(path.read_text()[:40])  # truncated, as by a full disk
    with pytest.raises(store.BrokenRunError, match=rf"{path}.*force=True"):
        run(tiny(variant="bce"), tmp_path, cache_dir)
    assert comparable(run(tiny(variant="bce"), tmp_path, cache_dir, force=True)) == comparable(record)


def test_a_reference_with_another_split_is_refused_and_force_reference_retrains_it(tmp_path, cache_dir):
    run(tiny(variant="bce", privileged=(8, 9)), tmp_path, cache_dir)
    with pytest.raises(store.StaleRunError, match="force_reference=True"):
        run(tiny(variant="cpo", privileged=(7, 9)), tmp_path, cache_dir)
    record = run(tiny(variant="cpo", privileged=(7, 9)), tmp_path, cache_dir, force_reference=True)
    assert store.read_record(tmp_path / record["reference"])["data"]["privileged"] == [7, 9]


def test_a_fairpo_run_and_its_baseline_share_one_reference_whatever_the_method_fields(tmp_path, cache_dir):
    plain = run(tiny(variant="bce"), tmp_path, cache_dir)
    record = run(tiny(variant="cpo", beta=0.3, epsilon=0.1, init="reference", selection="privileged"),
                 tmp_path, cache_dir)
    assert record["reference"] == plain["run_dir"]  # reused, not refused: β, ε, init do not shape BCE


def test_the_grid_lists_stale_runs_before_any_work_and_force_retrains_exactly_those(tmp_path, cache_dir):
    from fairpo.run.grid import run_grid

    (tmp_path / ".cache").symlink_to(cache_dir)  # the module's backbone and features
    grid = dict(methods=[("bce", "none")], quiet=True, extra=dict(TINY))
    run_grid("digits", (0, 1), tmp_path, epochs=1, **grid)
    with pytest.raises(ValueError, match=r"(?s)2 run\(s\) of the grid cannot be reused.*epochs: stored 1, asked 2"):
        run_grid("digits", (0, 1), tmp_path, epochs=2, **grid)
    records = run_grid("digits", (0, 1), tmp_path, epochs=2, force=True, **grid)
    assert sorted(records["epochs_run"]) == [2, 2]


def _write_features(root, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 60), ("test", 30)):
        y = (rng.random((n, 4)) < [0.5, 0.4, 0.3, 0.15]).astype(np.float32)
        x = (y @ rng.normal(size=(4, 6)) + rng.normal(size=(n, 6))).astype(np.float32)
        np.savez(root / f"{split}.npz", x=x, y=y)


def test_changed_feature_files_are_refused_and_force_retrains_on_the_new_ones(tmp_path, cache_dir):
    data = tmp_path / "mine"
    _write_features(data, seed=0)
    config = RunConfig(dataset="features", data_root=str(data), variant="bce", epochs=2, lr=1e-2)
    first = run(config, tmp_path / "store", cache_dir)
    assert run(config, tmp_path / "store", cache_dir) == first  # the same files: reused
    _write_features(data, seed=1)  # the same folder, other content
    with pytest.raises(store.StaleRunError, match="data_fingerprint: stored"):
        run(config, tmp_path / "store", cache_dir)
    again = run(config, tmp_path / "store", cache_dir, force=True)
    assert again["identity"]["data_fingerprint"] != first["identity"]["data_fingerprint"]
    # another folder of features is another data set: refused too, not mixed with the first
    other = tmp_path / "theirs"
    _write_features(other, seed=2)
    with pytest.raises(store.StaleRunError, match="data_root: stored"):
        run(config.replace(data_root=str(other)), tmp_path / "store", cache_dir)


def test_on_a_gpu_the_splits_that_fit_in_half_its_free_memory_move_there_training_split_first(monkeypatch):
    # the "meta" device stands in for the GPU: a tensor moved there shows it, and nothing is allocated
    split = {name: torch.zeros(n, 250) for name, n in (("train", 400), ("val", 100), ("test", 300))}  # 1000 B a row
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1_000_000, 2_000_000))
    moved = T.on_device_if_it_fits(split, torch.device("meta"))  # budget 500,000 B
    assert [moved[k].device.type for k in ("train", "val", "test")] == ["meta", "meta", "cpu"]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (700_000, 2_000_000))
    moved = T.on_device_if_it_fits(split, torch.device("meta"))  # 350,000 B: train does not fit, val does
    assert [moved[k].device.type for k in ("train", "val", "test")] == ["cpu", "meta", "cpu"]
    assert moved["train"] is split["train"]
