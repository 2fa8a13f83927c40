"""Notebook parameters: misspelt names fail, defaults resolve, values reach the configuration (training) or
come back cleaned (the results notebooks)."""

import pytest

from fairpo.run.params import (TRAIN_PARAMETERS, config_from_parameters, default_results_dir, find_repo_root,
                               parse_seeds, table_parameters)

DEFAULTS = dict(dataset="digits", data_root="", num_labels=0, variant="cpo", ablation="none", init="fresh",
                selection="overall", seed=0, epochs=0, results_dir="", device="auto", privileged="", config_json="",
                force=False, force_reference=False, quiet=False)


def test_defaults_give_the_default_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config, results = config_from_parameters(DEFAULTS, before=set())
    assert (config.variant, config.dataset, config.privileged, config.data_root) == ("cpo", "digits", None, None)
    assert config.epochs == 80  # 0: the data set's profile
    assert results == tmp_path.resolve() / "results"


def test_misspelt_parameter_is_an_error_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['varient'\].*variant"):
        config_from_parameters({**DEFAULTS, "varient": "dpo"}, before=set())


def test_names_defined_before_the_parameters_cell_are_ignored():
    config, _ = config_from_parameters({**DEFAULTS, "math": object()}, before={"math"})
    assert config.variant == "cpo"


def test_values_reach_the_configuration():
    params = {**DEFAULTS, "variant": "dpo", "ablation": "no-grpo", "privileged": "8, nine", "seed": 2,
              "dataset": "features", "data_root": "/data/mine", "num_labels": 5, "results_dir": "/tmp/r",
              "init": "reference", "selection": "privileged", "epochs": 7}
    config, results = config_from_parameters(params, before=set())
    assert config.privileged == (8, "nine") and config.num_labels == 5 and config.seed == 2
    assert (config.init, config.selection, config.epochs) == ("reference", "privileged", 7)
    assert config.run_name == "dpo+no-grpo+from-reference" and str(results) == "/tmp/r"


def test_invalid_values_fail_through_the_configuration():
    with pytest.raises(ValueError, match="choose one of"):
        config_from_parameters({**DEFAULTS, "variant": "ppo"}, before=set())


def test_results_dir_is_the_repository_results_from_any_folder_inside_it():
    root = find_repo_root()
    assert root is not None and (root / "pyproject.toml").is_file()
    assert default_results_dir(root / "notebooks") == root / "results"
    assert default_results_dir(root) == root / "results"
    assert set(TRAIN_PARAMETERS) == set(DEFAULTS)


def test_every_other_field_comes_through_config_json():
    config, _ = config_from_parameters({**DEFAULTS, "config_json": '{"lr": 3e-4, "beta": 0.3, "extra": {"num_test": 50}}'},
                                       before=set())
    assert (config.lr, config.beta, config.extra) == (3e-4, 0.3, {"num_test": 50})
    with pytest.raises(ValueError, match="unknown configuration keys"):
        config_from_parameters({**DEFAULTS, "config_json": '{"bta": 0.3}'}, before=set())
    with pytest.raises(ValueError, match="JSON object"):
        config_from_parameters({**DEFAULTS, "config_json": "beta=0.3"}, before=set())


def test_the_grid_passes_a_runs_whole_configuration_to_the_notebook(monkeypatch, tmp_path):
    import papermill

    from fairpo.run.config import RunConfig
    from fairpo.run.grid import run_notebook

    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, parameters, **k: seen.update(parameters))
    wanted = RunConfig(variant="dpo", lr=3e-4, beta=0.3, head_activation="gelu", extra={"num_test": 50}, seed=4)
    run_notebook(wanted, tmp_path)
    rebuilt, _ = config_from_parameters({**DEFAULTS, **{k: v for k, v in seen.items() if k in DEFAULTS}},
                                        before=set())
    assert rebuilt == wanted


# ---------------------------------------------------------------- the results notebooks' parameters


def test_parse_seeds():
    assert parse_seeds("0,1,2") == (0, 1, 2)
    assert parse_seeds(" 3 4 ") == (3, 4)
    assert parse_seeds(5) == (5,)
    assert parse_seeds([0, 2]) == (0, 2)
    for bad in ("", "0,-1", "a,b", "1,1", []):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)


def test_table_parameters_refuse_a_misspelt_name():
    before = {"x"}
    good = dict(x=1, results_dir="../results", dataset="digits", data_root="", seeds="0,1", test="bootstrap",
                resamples=10, jobs=1)
    got = table_parameters(good, before)
    assert got["seeds"] == (0, 1) and got["test"] == "bootstrap" and got["results_dir"].as_posix() == "../results"
    assert got["data_root"] is None and got["grid"] == dict(jobs=1, quiet=True)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['datset'\]"):
        table_parameters(dict(good, datset="coco"), before)
    with pytest.raises(ValueError, match="unknown dataset 'cocoa'"):
        table_parameters(dict(good, dataset="cocoa"), before)
    with pytest.raises(ValueError, match="resamples must be"):
        table_parameters(dict(good, resamples=0), before)


def test_table_parameters_for_your_features_need_their_folder(tmp_path):
    good = dict(results_dir="r", dataset="features", data_root=str(tmp_path), seeds="0", test="welch",
                resamples=10, jobs=2)
    assert table_parameters(good, set())["grid"] == dict(jobs=2, quiet=True, data_root=str(tmp_path))
    with pytest.raises(ValueError, match="needs data_root"):
        table_parameters(dict(good, data_root=""), set())
    with pytest.raises(ValueError, match="is not a folder"):
        table_parameters(dict(good, data_root=str(tmp_path / "nowhere")), set())
