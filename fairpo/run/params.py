"""Parameters of the notebooks: validate what papermill injected.

papermill accepts any ``-p name value`` and only warns about names the notebook does not declare, so a
misspelt ``-p varient cpo`` would silently train the default. :func:`config_from_parameters` (the
training notebook, ``notebooks/train.ipynb``: it also builds the run configuration) and
:func:`table_parameters` (the results notebooks, ``notebooks/results.ipynb`` and
``notebooks/ablations.ipynb``) turn such a name into an error that lists the valid parameters, before
any work starts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fairpo.run.config import DATASETS, RunConfig

TRAIN_PARAMETERS = ("dataset", "data_root", "num_labels", "variant", "ablation", "init", "selection", "seed", "epochs",
                    "results_dir", "device", "privileged", "config_json", "force", "force_reference", "quiet")


def find_repo_root(start: str | Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) holding this project."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "fairpo" / "__init__.py").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def default_results_dir(start: str | Path | None = None) -> Path:
    """``<repository>/results`` when run inside the repository (from its root, ``notebooks/`` or a
    run folder), else ``./results``."""
    root = find_repo_root(start)
    return (root or Path(start or Path.cwd()).resolve()) / "results"


def config_from_parameters(namespace: Mapping[str, Any], before: set[str]) -> tuple[RunConfig, Path]:
    """Check the names a notebook gained since ``before`` and build ``(config, results_dir)``.

    ``namespace`` is the notebook's ``globals()``; ``before`` the names that existed before the
    parameters cell. Empty strings and 0 mean "default" for ``data_root``, ``num_labels``,
    ``privileged``, ``epochs`` (the data set's profile) and ``results_dir``. ``config_json`` is a JSON object
    of any further :class:`~fairpo.run.config.RunConfig` fields (``'{"lr": 3e-4, "beta": 0.3}'``): every
    field can be set from the notebook, and the grid passes a run's whole configuration this way.
    """
    new = {name for name in set(namespace) - set(before) if not name.startswith("_")}
    unknown = sorted(new - set(TRAIN_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; this notebook takes: {', '.join(TRAIN_PARAMETERS)}")
    p = {name: namespace[name] for name in TRAIN_PARAMETERS}
    privileged = tuple(x.strip() for x in str(p["privileged"]).split(",") if x.strip()) or None
    if privileged:
        privileged = tuple(int(x) if x.lstrip("-").isdigit() else x for x in privileged)
    try:
        more = json.loads(p["config_json"]) if str(p["config_json"]).strip() else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"parameter config_json must be a JSON object of RunConfig fields, got "
                         f"{p['config_json']!r} ({err})") from None
    if not isinstance(more, dict):
        raise ValueError(f"parameter config_json must be a JSON object of RunConfig fields, got {p['config_json']!r}")
    fields = dict(dataset=p["dataset"], data_root=p["data_root"] or None, num_labels=p["num_labels"] or None,
                  variant=p["variant"], ablation=p["ablation"], init=p["init"], selection=p["selection"],
                  seed=p["seed"], epochs=p["epochs"] or None, device=p["device"], privileged=privileged)
    clash = sorted(k for k in more if k in fields and more[k] != fields[k] and k in new)
    if clash:
        raise ValueError(f"{clash} given both as parameters and inside config_json; give each once")
    config = RunConfig.from_dict({**fields, **more})
    results_dir = Path(p["results_dir"]) if p["results_dir"] else default_results_dir()
    return config, results_dir


# ---------------------------------------------------------------- the results notebooks

TABLE_PARAMETERS = ("results_dir", "dataset", "data_root", "seeds", "test", "resamples", "jobs")
"""Parameters of ``notebooks/results.ipynb`` and ``notebooks/ablations.ipynb``."""
TABLE_TESTS = ("welch", "bootstrap")
"""What the ``test`` parameter takes: the significance tests of :data:`fairpo.report.stats.TESTS`."""


def parse_seeds(seeds: str | int | Sequence[int]) -> tuple[int, ...]:
    """``"0,1,2"``, ``"0 1 2"``, ``2`` or ``[0, 1, 2]`` → ``(0, 1, 2)``; non-negative, no duplicates."""
    if isinstance(seeds, str):
        parts = [p for p in re.split(r"[,\s]+", seeds.strip()) if p]
        if not parts or not all(p.isdigit() for p in parts):
            raise ValueError(f"seeds must be non-negative integers separated by commas, e.g. '0,1,2'; got {seeds!r}")
        values = [int(p) for p in parts]
    elif isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        values = [int(seeds)]
    else:
        values = [int(s) for s in seeds]
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise ValueError(f"seeds must be distinct non-negative integers, at least one; got {seeds!r}")
    return tuple(values)


def table_parameters(namespace: dict, before: set[str]) -> dict:
    """Validate the parameters a results notebook gained since ``before`` (papermill only warns about
    a misspelt name) and return them cleaned: ``results_dir`` (Path), ``dataset``, ``data_root`` (None
    when empty), ``seeds`` (tuple), ``test``, ``resamples``, ``jobs``, and ``grid``: the keyword arguments
    :func:`fairpo.run.grid.ensure_grid` needs for this data set."""
    new = {name for name in set(namespace) - set(before) if not name.startswith("_")}
    unknown = sorted(new - set(TABLE_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; this notebook takes: {', '.join(TABLE_PARAMETERS)}")
    p = {name: namespace[name] for name in TABLE_PARAMETERS}
    if p["dataset"] not in DATASETS:
        raise ValueError(f"unknown dataset {p['dataset']!r}; choose one of: {', '.join(DATASETS)}")
    if p["test"] not in TABLE_TESTS:
        raise ValueError(f"unknown test {p['test']!r}; choose one of: {', '.join(TABLE_TESTS)}")
    for name in ("resamples", "jobs"):
        if isinstance(p[name], bool) or not isinstance(p[name], int) or p[name] < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {p[name]!r}")
    data_root = str(p["data_root"]) if p["data_root"] else None
    if p["dataset"] == "features" and data_root is None:
        raise ValueError("dataset 'features' needs data_root: the folder of your train and test files "
                         "(papermill … -p dataset features -p data_root DIR)")
    if data_root is not None and not Path(data_root).is_dir():
        raise ValueError(f"data_root {data_root} is not a folder")
    grid = dict(jobs=p["jobs"], quiet=True, **({"data_root": data_root} if data_root else {}))
    return dict(results_dir=Path(p["results_dir"]), dataset=p["dataset"], data_root=data_root,
                seeds=parse_seeds(p["seeds"]), test=p["test"], resamples=p["resamples"], jobs=p["jobs"], grid=grid)
