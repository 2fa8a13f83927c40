"""Parameters of ``notebooks/train.ipynb``: validate what papermill injected, build the run configuration.

papermill accepts any ``-p name value`` and only warns about names the notebook does not declare, so a
misspelt ``-p varient cpo`` would silently train the default. :func:`config_from_parameters` turns such
a name into an error that lists the valid parameters, before any work starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from fairpo.run.config import RunConfig

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
