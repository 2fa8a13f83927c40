"""The grid behind Tables 1–4: every method and every CPO ablation, for each seed.

``run_grid`` trains what the run store lacks — the ``bce`` references first, so parallel jobs never
race to train the same reference, and each FairPO run as soon as its own reference is done — and
returns the store's records as a DataFrame. ``via="papermill"`` runs each run through
``notebooks/train.ipynb`` and keeps the executed notebook beside its record; ``via="python"`` calls
:func:`fairpo.run.train.train` directly (the same code, without a kernel per run).
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from fairpo.run import store
from fairpo.run.config import ABLATIONS, BEYOND_BASELINES, FAIRPO_VARIANTS, PAPER_BASELINES, RunConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_NOTEBOOK = REPO_ROOT / "notebooks" / "train.ipynb"

TABLE_METHODS = [(v, "none") for v in (*PAPER_BASELINES, *FAIRPO_VARIANTS)]
"""Rows of Tables 1–2."""
ABLATION_METHODS = [("cpo", a) for a in ABLATIONS if a != "none"]
"""Rows of Tables 3–4 (besides full FairPO-CPO)."""
BEYOND_METHODS = [("cpo", "none", "reference"), *((v, "none") for v in BEYOND_BASELINES)]
"""Rows beyond the paper — FairPO-CPO started from a copy of its reference (``init="reference"``), and the
baselines practitioners would pick instead (asymmetric and distribution-balanced losses)."""


def grid_configs(dataset: str = "digits", seeds: Sequence[int] = (0, 1, 2), *,
                 methods: Iterable[tuple[str, str]] | None = None, **overrides) -> list[RunConfig]:
    """One validated configuration per (method, seed), references (``bce``) first.

    A method is ``(variant, ablation)`` or ``(variant, ablation, init)``.
    """
    methods = list(methods) if methods is not None else TABLE_METHODS + ABLATION_METHODS + BEYOND_METHODS
    configs = [RunConfig(dataset=dataset, variant=m[0], ablation=m[1], init=m[2] if len(m) > 2 else "fresh",
                         seed=int(s), **overrides)
               for m in methods for s in seeds]
    return sorted(configs, key=lambda c: c.variant != "bce")


def _train_in_worker(config: RunConfig, results_dir: str, via: str, quiet: bool, force: bool = False) -> str:
    import torch

    torch.set_num_threads(1)  # jobs share the cores; more threads per job only adds contention
    if via == "papermill":
        return str(run_notebook(config, results_dir, quiet=quiet, force=force))
    from fairpo.run.train import train

    train(config, results_dir, quiet=quiet, force=force)
    return config.run_name


def run_notebook(config: RunConfig, results_dir: str | os.PathLike, *, quiet: bool = True, force: bool = False) -> Path:
    """Execute ``notebooks/train.ipynb`` for one configuration; the executed copy is saved in the run folder."""
    import papermill

    results_dir = Path(results_dir).resolve()
    folder = store.run_dir_of(results_dir, config)
    folder.mkdir(parents=True, exist_ok=True)
    # the notebook's own parameters, and every other field of the configuration as JSON: nothing dropped
    whole = config.to_dict()
    named = ("dataset", "data_root", "num_labels", "variant", "ablation", "init", "selection", "seed", "epochs",
             "device", "privileged")
    params = dict(dataset=config.dataset, data_root=config.data_root or "", num_labels=config.num_labels or 0,
                  variant=config.variant, ablation=config.ablation, init=config.init, selection=config.selection,
                  seed=config.seed, epochs=config.epochs, results_dir=str(results_dir), device=config.device,
                  privileged=",".join(map(str, config.privileged or ())),
                  config_json=json.dumps({k: v for k, v in whole.items() if k not in named}), quiet=True, force=force)
    out = folder / "train.ipynb"
    papermill.execute_notebook(str(TRAIN_NOTEBOOK), str(out), parameters=params, cwd=str(TRAIN_NOTEBOOK.parent),
                               progress_bar=not quiet, log_output=False)
    return out


EXECUTORS = ("none", "local", "slurm")
"""Where the grid's runs go — ``none`` (this process, or ``jobs`` worker processes), or through submitit
with ``local`` (one subprocess per run, all at once, for testing) or ``slurm`` (one job per run, a job
array per wave, the references' wave first)."""


def _submit_wave(phase: list[RunConfig], forced: list[bool], results_dir, via: str, executor: str,
                 cluster: dict) -> None:
    """Run one wave of the grid through submitit and wait for it; each job's log goes beside its record."""
    try:
        import submitit
    except ImportError:
        raise ImportError("executor 'local' or 'slurm' needs submitit: pip install submitit") from None
    ex = submitit.AutoExecutor(folder=Path(results_dir) / ".submitit" / "%j", cluster=executor)
    ex.update_parameters(timeout_min=int(cluster.get("timeout_min", 240)), name="fairpo",
                         **{k: v for k, v in cluster.items() if k != "timeout_min" and v is not None})
    n = len(phase)
    jobs = ex.map_array(_train_in_worker, phase, [str(results_dir)] * n, [via] * n, [True] * n, forced)
    failures = []
    for config, job in zip(phase, jobs):
        try:
            job.result()
        except Exception as err:  # a failed job: report every one, with where its log is
            failures.append(f"{config.run_name} seed {config.seed}: {err.__class__.__name__} (log: {job.paths.stderr})")
            continue
        folder = store.run_dir_of(results_dir, config)
        for kind, path in (("stdout", job.paths.stdout), ("stderr", job.paths.stderr)):
            if Path(path).is_file():
                shutil.copyfile(path, folder / f"job.{kind}.log")
    if failures:
        raise RuntimeError(f"{len(failures)} job(s) of the grid failed:\n- " + "\n- ".join(failures))


def with_missing_references(pending: list[RunConfig], results_dir) -> list[RunConfig]:
    """``pending`` with, in front, the reference of every FairPO run whose reference is neither finished in
    the store nor pending itself: it is trained once, first, instead of by two workers racing."""
    known = {store.run_dir_of(results_dir, c) for c in pending if c.variant == "bce"}
    missing = []
    for c in pending:
        folder = store.run_dir_of(results_dir, c.reference()) if c.needs_reference else None
        if folder is not None and folder not in known and not (folder / store.RECORD_FILE).is_file():
            known.add(folder)
            missing.append(c.reference())
    return missing + pending


def reference_folder(results_dir, config: RunConfig) -> Path:
    """The run folder of ``config``'s reference (its own folder for a run that needs none)."""
    return store.run_dir_of(results_dir, config.reference() if config.needs_reference else config)


def ready_and_waiting(pending: list[RunConfig], results_dir) -> tuple[list[RunConfig], list[RunConfig]]:
    """(the runs that may start now, the FairPO runs that must wait for a reference ``pending`` trains)."""
    training = {reference_folder(results_dir, c) for c in pending if c.variant == "bce"}
    waiting = [c for c in pending if c.needs_reference and reference_folder(results_dir, c) in training]
    return [c for c in pending if c not in waiting], waiting


def _run_pool(pending: list[RunConfig], redo: set, results_dir, via: str, jobs: int, bar) -> None:
    """Train ``pending`` on ``jobs`` worker processes, each FairPO run as soon as its own reference is done.

    The references go first, then every run that needs none (the baselines), so no worker waits while a
    reference trains; a FairPO run is queued when its reference finishes (at once if it is already in the
    store). Every run is independent of the others' timing, so the records are those of one job.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    ready, waiting = ready_and_waiting(pending, results_dir)
    key = functools.partial(reference_folder, results_dir)
    # spawn, not fork: forking a process that already runs torch's thread pools can hang
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        def submit(configs):
            return {pool.submit(_train_in_worker, c, str(results_dir), via, True, (c.run_name, c.seed) in redo): c
                    for c in configs}

        running = submit(ready)
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    config = running.pop(future)
                    future.result()  # a failed run stops the grid with its own error
                    bar.update()
                    if config.variant == "bce":
                        running.update(submit([c for c in waiting if key(c) == key(config)]))
        except BaseException:
            for future in running:  # runs not started yet are dropped; finished ones stay in the store
                future.cancel()
            raise


def run_grid(dataset: str = "digits", seeds: Sequence[int] = (0, 1, 2), results_dir: str | os.PathLike = "results",
             *, jobs: int = 1, via: str = "python", quiet: bool = False, force: bool = False,
             executor: str = "none", cluster: dict | None = None,
             methods: Iterable[tuple[str, str]] | None = None, **overrides) -> pd.DataFrame:
    """Train every missing run of the grid and return :func:`fairpo.run.store.collect_records` for the data set.

    Before any work, every run folder of the grid is checked: a finished run trained with another
    configuration (say another epoch budget) or a damaged record is listed in one error, unless
    ``force``, which retrains exactly those. With ``jobs > 1`` the runs go to worker processes started
    with ``spawn``: call it from a script under ``if __name__ == "__main__":``. With ``executor`` ``local``
    or ``slurm`` they go through submitit instead (:data:`EXECUTORS`), in two waves (the runs without a
    reference, the references among them, then the FairPO runs); ``cluster`` holds submitit's
    parameters (``timeout_min``, ``slurm_partition``, ``gpus_per_node``, ``slurm_array_parallelism``…).
    """
    if via not in ("python", "papermill"):
        raise ValueError(f"via must be 'python' or 'papermill', got {via!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    configs = grid_configs(dataset, seeds, methods=methods, **overrides)  # validates before any work
    root = configs[0].data_root if configs else None
    if root is not None and not Path(root).is_dir():
        raise FileNotFoundError(f"data_root {root} of the {dataset!r} data set is not a folder: give the folder "
                                f"that holds your copy (see the book's data chapter for the layout)")
    pending, redo, problems = [], set(), []
    for c in configs:
        try:
            if store.reusable_record(store.run_dir_of(results_dir, c), c.identity(), RunConfig.defaults()) is None:
                pending.append(c)
        except (store.BrokenRunError, store.StaleRunError) as err:
            problems.append(str(err))
            pending.append(c)
            redo.add((c.run_name, c.seed))
    if problems and not force:
        raise ValueError(f"{len(problems)} run(s) of the grid cannot be reused:\n- " + "\n- ".join(problems)
                         + "\nRetrain exactly these with force=True (fairpo reproduce --force).")
    pending = with_missing_references(pending, results_dir)
    from tqdm.auto import tqdm

    with tqdm(total=len(pending), desc=f"grid {dataset}", disable=quiet or not pending) as bar:
        if executor != "none":
            for phase in ([c for c in pending if not c.needs_reference], [c for c in pending if c.needs_reference]):
                if phase:
                    _submit_wave(phase, [(c.run_name, c.seed) in redo for c in phase], results_dir, via, executor,
                                 cluster or {})
                    bar.update(len(phase))
        elif jobs == 1:
            for c in pending:  # references first (grid_configs' order)
                _train_in_worker(c, str(results_dir), via, True, (c.run_name, c.seed) in redo)
                bar.update()
        else:
            _run_pool(pending, redo, results_dir, via, jobs, bar)
    records = store.collect_records(results_dir)
    if records.empty:
        return records
    return records[records["dataset"] == dataset].reset_index(drop=True)


def ensure_grid(dataset: str = "digits", seeds: Sequence[int] = (0, 1, 2), results_dir: str | os.PathLike = "results",
                **kwargs) -> pd.DataFrame:
    """The grid's records, training first whatever is missing (what the results notebooks call).

    The embedded ``digits`` set, and a ``features`` set given its ``data_root``, are trained on demand;
    for COCO or NUS-WIDE the records present are returned as they are, since training those needs a GPU
    and the user's copy of the data (``fairpo reproduce`` trains them).
    """
    if dataset != "digits" and not (dataset == "features" and kwargs.get("data_root")):
        records = store.collect_records(results_dir)
        return records[records["dataset"] == dataset].reset_index(drop=True) if not records.empty else records
    return run_grid(dataset, seeds, results_dir, **kwargs)
