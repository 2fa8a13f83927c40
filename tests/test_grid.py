"""The grid runner: the same records whatever the number of jobs, whichever process built the caches."""

import pytest

from fairpo.run import store
from fairpo.run.grid import grid_configs, ready_and_waiting, run_grid, with_missing_references

METHODS = [("bce", "none"), ("cpo", "none"), ("cpo", "none", "reference")]
TINY = dict(epochs=2, extra=dict(num_train=300, num_test=200))


def test_grid_configs_put_references_first_and_carry_the_start():
    configs = grid_configs("digits", (0, 1), methods=METHODS, **TINY)
    assert [c.variant for c in configs[:2]] == ["bce", "bce"]
    assert sorted(c.run_name for c in configs[2:]) == ["cpo", "cpo", "cpo+from-reference", "cpo+from-reference"]


def test_a_fairpo_run_without_its_reference_in_the_grid_gets_it_trained_first_once(tmp_path):
    cpo = grid_configs("digits", (0, 1), methods=[("cpo", "none"), ("dpo", "none"), ("focal", "none")], **TINY)
    planned = with_missing_references(cpo, tmp_path)
    assert planned[:2] == [c.reference() for c in cpo if c.variant == "cpo"]  # one per seed, not one per run
    assert planned[2:] == cpo and all(c.variant == "bce" and c.seed in (0, 1) for c in planned[:2])
    assert with_missing_references(planned, tmp_path) == planned  # a pending reference is not added twice
    done = store.run_dir_of(tmp_path, planned[0])
    done.mkdir(parents=True)
    (done / store.RECORD_FILE).write_text("{}")  # a finished reference in the store is not retrained
    assert with_missing_references(cpo, tmp_path) == [planned[1], *cpo]


def test_fairpo_runs_wait_only_for_a_reference_the_grid_is_training(tmp_path):
    configs = grid_configs("digits", (0, 1), methods=[("bce", "none"), ("cpo", "none"), ("focal", "none")], **TINY)
    ready, waiting = ready_and_waiting(configs, tmp_path)
    assert sorted((c.variant, c.seed) for c in ready) == [("bce", 0), ("bce", 1), ("focal", 0), ("focal", 1)]
    assert sorted((c.variant, c.seed) for c in waiting) == [("cpo", 0), ("cpo", 1)]
    # seed 0's reference already finished: its FairPO run starts at once, seed 1's still waits
    pending = [c for c in configs if not (c.variant == "bce" and c.seed == 0)]
    ready, waiting = ready_and_waiting(pending, tmp_path)
    assert ("cpo", 0) in [(c.variant, c.seed) for c in ready] and [(c.variant, c.seed) for c in waiting] == [("cpo", 1)]


@pytest.mark.slow
def test_grid_records_do_not_depend_on_the_number_of_jobs(tmp_path):
    # each store has its own empty cache: with two jobs, which worker pretrains the backbone is a race
    one = run_grid("digits", (0, 1), tmp_path / "one", jobs=1, methods=METHODS, quiet=True, **TINY)
    two = run_grid("digits", (0, 1), tmp_path / "two", jobs=2, methods=METHODS, quiet=True, **TINY)
    assert len(one) == len(two) == 6
    for config in grid_configs("digits", (0, 1), methods=METHODS, **TINY):
        a, b = (store.run_dir_of(tmp_path / name, config) for name in ("one", "two"))
        assert store.without_timings(store.read_record(a)) == store.without_timings(store.read_record(b))
        assert store.load_history(a / "steps.jsonl").equals(store.load_history(b / "steps.jsonl"))


@pytest.mark.slow
def test_submitit_local_executor_gives_the_records_of_a_local_run(tmp_path):
    methods = [("bce", "none"), ("cpo", "none")]
    here = run_grid("digits", (0,), tmp_path / "here", methods=methods, quiet=True, **TINY)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / ".cache").symlink_to(tmp_path / "here" / ".cache")  # the same backbone and features
    there = run_grid("digits", (0,), tmp_path / "jobs", methods=methods, quiet=True, executor="local",
                     cluster=dict(timeout_min=10), **TINY)
    assert len(here) == len(there) == 2
    for config in grid_configs("digits", (0,), methods=methods, **TINY):
        a, b = (store.run_dir_of(tmp_path / name, config) for name in ("here", "jobs"))
        assert store.without_timings(store.read_record(a)) == store.without_timings(store.read_record(b))
        assert "Job completed successfully" in (b / "job.stdout.log").read_text()  # the job's log, beside its record


def test_an_unknown_executor_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="none, local, slurm"):
        run_grid("digits", (0,), tmp_path, methods=METHODS, executor="kubernetes", **TINY)
