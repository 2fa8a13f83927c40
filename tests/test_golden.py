"""The golden trajectory (tests/golden/): every method's first steps on a fixed input match the file.

Determinism within one process is checked in test_train.py; this compares against numbers written by
an earlier process (and an earlier version of the code), within the tolerance the file states.
"""

import json
import math

import pytest

from golden.trajectory import GOLDEN, RUNS, trajectory


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def now():
    return trajectory()


def test_the_file_covers_every_run_and_states_why_it_was_written(golden):
    assert len(golden["runs"]) == len(RUNS) and golden["reasons"] and golden["environment"]
    assert set(golden["tolerance"]) == {"rtol", "atol"}


def test_every_step_of_every_method_matches_the_golden_trajectory(golden, now):
    tol = golden["tolerance"]
    assert sorted(now) == sorted(golden["runs"])
    for name, steps in golden["runs"].items():
        assert len(now[name]) == len(steps), name
        for step, (want, got) in enumerate(zip(steps, now[name])):
            assert sorted(got) == sorted(want), (name, step)
            for column, value in want.items():
                assert math.isclose(got[column], value, rel_tol=tol["rtol"], abs_tol=tol["atol"]), (
                    f"{name} step {step} {column}: {got[column]!r} now, {value!r} in {GOLDEN.name}")


def test_the_trajectories_tell_the_methods_apart(golden):
    """A golden file where two methods coincide would not notice a dispatch that ran the wrong one."""
    first = {name: round(steps[-1]["loss"], 6) for name, steps in golden["runs"].items()}
    assert len(set(first.values())) == len(first)
    assert all("alpha_P" in steps[0] for name, steps in golden["runs"].items()
               if name.startswith(("dpo", "simpo", "cpo", "gdro")) and name != "cpo+global")
