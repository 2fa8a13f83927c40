"""The command line: every configuration field is an option, user errors are one line and exit 2."""

import dataclasses

import pytest

from fairpo.run import cli
from fairpo.run.config import RunConfig


def _help(command: str) -> str:
    parser = cli._parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return sub.format_help()


@pytest.mark.parametrize("command", ["train", "reproduce"])
def test_every_configuration_field_is_an_option(command):
    text = _help(command)
    for field in dataclasses.fields(RunConfig):
        if field.name == "extra" or (command == "reproduce" and field.name in cli.GRID_FIXED):
            continue
        assert f"--{field.name.replace('_', '-')}" in text, field.name


def test_options_reach_the_configuration():
    args = cli._parser().parse_args(["train", "--variant", "dpo", "--lr", "3e-4", "--privileged", "8, nine",
                                     "--num-labels", "5", "--init", "reference", "--epochs", "7"])
    config = RunConfig(**cli._config_fields(args))
    assert (config.variant, config.lr, config.privileged, config.num_labels) == ("dpo", 3e-4, (8, "nine"), 5)
    assert (config.init, config.epochs) == ("reference", 7)


@pytest.mark.parametrize("argv, message", [
    (["train", "--variant", "bce", "--ablation", "no-grpo"], "FairPO variants only"),
    (["train", "--variant", "bce", "--init", "reference"], "FairPO variants only"),
    (["train", "--lr", "-1"], "lr"),
    (["train", "--dataset", "features"], "data_root"),
    (["reproduce", "--dataset", "features", "--data-root", "/nowhere/at/all"], "/nowhere/at/all"),
])
def test_user_errors_are_one_line_on_stderr_and_exit_2(argv, message, capsys, tmp_path):
    assert cli.main(argv + ["--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fairpo: error:") and message in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="FairPO variants only"):
        cli.main(["--debug", "train", "--variant", "bce", "--ablation", "no-grpo", "--results-dir", str(tmp_path)])


def test_example_features_writes_a_folder_the_grid_accepts(tmp_path, capsys):
    from fairpo.data import load_dataset

    assert cli.main(["example-features", str(tmp_path / "mine")]) == 0
    assert "--dataset features --data-root" in capsys.readouterr().out
    assert len(load_dataset("features", tmp_path / "mine").label_names) == 12
