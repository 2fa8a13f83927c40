"""Data parallelism with two CPU processes (gloo), as `torchrun --nproc_per_node 2` would run it."""

import math
import os
import socket
import statistics

import pytest
import torch.multiprocessing as mp

from fairpo.run import store
from fairpo.run.config import RunConfig
from fairpo.run.train import train

CONFIG = dict(variant="cpo", epochs=2, lr=1e-3, extra=dict(num_train=300, num_test=200))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, results, cache):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    import torch.distributed as dist

    try:
        train(RunConfig(**CONFIG), results, cache_dir=cache, quiet=True)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    cache = base / "cache"
    single = train(RunConfig(**CONFIG), base / "single", cache_dir=cache, quiet=True)
    mp.spawn(_worker, args=(2, _free_port(), str(base / "ddp"), str(cache)), nprocs=2, join=True)
    return base, single


@pytest.fixture(scope="module")
def seed_spread(runs):
    """Seed-to-seed standard deviation of each group's test mAP for this configuration (seeds 0-3)."""
    base, single = runs
    cache = base / "cache"
    records = [single] + [train(RunConfig(**CONFIG, seed=s), base / "single", cache_dir=cache, quiet=True)
                          for s in (1, 2, 3)]
    return {g: statistics.stdev(r["test"][g]["mAP"] for r in records)
            for g in ("privileged", "non_privileged", "overall")}


def test_every_rank_holds_the_same_group_weights(runs):
    base, single = runs
    folder = base / "ddp" / single["run_dir"]
    rank0 = store.load_history(folder / "steps.jsonl")
    rank1 = store.load_history(folder / store.rank_step_history(1))
    assert len(rank0) == len(rank1) == single["steps_run"]
    assert (rank0["alpha_P"] == rank1["alpha_P"]).all() and (rank0["alpha_N"] == rank1["alpha_N"]).all()
    assert (rank0["loss_P"] != rank1["loss_P"]).any()  # the ranks did see different halves of each batch


def test_data_parallel_record_matches_a_single_process_within_seed_spread(runs, seed_spread):
    base, single = runs
    ddp = store.read_record(base / "ddp" / single["run_dir"])
    assert ddp["status"] == "finished" and ddp["environment"]["world_size"] == 2
    assert ddp["data"] == single["data"] and ddp["steps_run"] == single["steps_run"]
    for group in ("privileged", "non_privileged", "overall"):
        # same data, same initial weights, same global batches, same averaged gradients; only the
        # counterpart draws differ (one stream per rank), a smaller change than another seed. The
        # difference of two runs with seed spread s has spread s·√2: allow four of those.
        tolerance = 4 * math.sqrt(2) * seed_spread[group]
        assert abs(ddp["test"][group]["mAP"] - single["test"][group]["mAP"]) <= tolerance, (group, tolerance)
