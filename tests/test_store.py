"""Tests for fairpo.run.store: atomic writes, exact round trips, canonical bytes, collecting records."""

import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fairpo.run import store
from fairpo.run.store import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    collect_records,
    environment_info,
    is_finished,
    json_bytes,
    load_checkpoint,
    load_history,
    parse_run_dir,
    read_json,
    read_record,
    run_dir,
    save_checkpoint,
    save_history,
    without_timings,
    write_record,
)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------- paths


def test_run_dir_naming(tmp_path):
    assert run_dir(tmp_path, "coco", "cpo", None, 0) == tmp_path / "coco" / "cpo" / "seed0"
    assert run_dir(tmp_path, "coco", "cpo", "none", 2) == tmp_path / "coco" / "cpo" / "seed2"
    assert run_dir("results", "digits", "cpo", "no-grpo", 1) == Path(
        "results/digits/cpo+no-grpo/seed1"
    )


def test_parse_run_dir_inverts_run_dir(tmp_path):
    for ablation, init, arm in [(None, "fresh", "none"), ("no-fallback", "fresh", "no-fallback"),
                                (None, "reference", "from-reference"),
                                ("no-grpo", "reference", "no-grpo+from-reference")]:
        folder = run_dir(tmp_path, "nuswide", "dpo", ablation, 7, init=init)
        assert parse_run_dir(folder) == {"dataset": "nuswide", "variant": "dpo", "ablation": arm, "seed": 7,
                                         "init": init}


@pytest.mark.parametrize(
    "args",
    [("", "cpo", None, 0), ("a/b", "cpo", None, 0), ("coco", "cp+o", None, 0),
     ("coco", "cpo", "a+b", 0), ("coco", "cpo", "x/y", 0), ("coco", "cpo", None, -1),
     ("coco", "cpo", None, True), ("coco", "cpo", None, 1.0), ("coco", "..", None, 0)],
)
def test_run_dir_rejects_ambiguous_names(tmp_path, args):
    with pytest.raises(ValueError):
        run_dir(tmp_path, *args)


# ---------------------------------------------------------------- atomicity


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old contents")

    def write_half_then_fail(handle):
        handle.write(b"new contents, first half")
        raise RuntimeError("serialiser died midway")

    with pytest.raises(RuntimeError, match="midway"):
        atomic_write(target, write_half_then_fail)
    assert target.read_text() == "old contents"
    assert leftovers(tmp_path) == []


def test_failed_json_write_keeps_old_record(tmp_path):
    target = tmp_path / "record.json"
    atomic_write_json(target, {"a": 1})
    before = target.read_bytes()
    with pytest.raises(TypeError, match="set"):
        atomic_write_json(target, {"a": 2, "z": {"deep": [1.0, {3, 4}]}})
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_interrupted_checkpoint_keeps_old_one(tmp_path, monkeypatch):
    path = tmp_path / "best.safetensors"
    save_checkpoint(path, {"w": torch.ones(3)})

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(store.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": torch.zeros(3)})
    monkeypatch.undo()
    tensors, _ = load_checkpoint(path)
    assert torch.equal(tensors["w"], torch.ones(3))
    assert leftovers(tmp_path) == []


def test_atomic_write_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "c.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two\n")
    assert target.read_bytes() == b"two\n"
    assert leftovers(target.parent) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "x.txt", "x")
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------- JSON


def test_json_round_trip_with_non_finite_floats(tmp_path):
    record = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "none": None,
              "tiny": 5e-324, "third": 1 / 3, "neg_zero": -0.0, "big": 2**70, "flag": True,
              "nested": {"list": [0.1, math.nan, "text"], "unicode": "λ, α_P"}}
    path = atomic_write_json(tmp_path / "r.json", record)
    json.loads(path.read_text())  # strict JSON: no bare NaN tokens
    back = read_json(path)
    assert math.isnan(back["nan"]) and math.isnan(back["nested"]["list"][1])
    assert back["inf"] == math.inf and back["ninf"] == -math.inf
    assert back["none"] is None and back["flag"] is True and back["big"] == 2**70
    for key in ("tiny", "third"):
        assert back[key] == record[key]
    assert math.copysign(1.0, back["neg_zero"]) == -1.0
    assert back["nested"]["list"][2] == "text" and back["nested"]["unicode"] == "λ, α_P"


def test_json_floats_round_trip_bit_exact():
    values = np.random.default_rng(0).standard_normal(500) * 10.0 ** np.arange(-250, 250)
    back = store.loads_json(json_bytes({"v": values.tolist()}))["v"]
    assert np.array_equal(np.array(back), values)


def test_numpy_scalars_are_stored_as_plain_numbers():
    data = {"f": np.float32(0.5), "i": np.int64(3), "b": np.bool_(True)}
    assert store.loads_json(json_bytes(data)) == {"f": 0.5, "i": 3, "b": True}


@pytest.mark.parametrize(
    "bad,error",
    [({"x": "NaN"}, ValueError), ({"x": ["Infinity"]}, ValueError), ({1: 2}, TypeError),
     ({"t": torch.tensor(1.0)}, TypeError), ({"p": Path("a")}, TypeError)],
)
def test_json_refuses_what_would_not_read_back(bad, error):
    with pytest.raises(error):
        json_bytes(bad)


def test_same_record_same_bytes_whatever_the_key_order(tmp_path):
    a = {"b": 1.0, "a": {"y": [1, 2], "x": math.nan}}
    b = {"a": {"x": math.nan, "y": [1, 2]}, "b": 1.0}
    write_record(tmp_path / "one", a)
    write_record(tmp_path / "two", b)
    one = (tmp_path / "one" / "record.json").read_bytes()
    assert one == (tmp_path / "two" / "record.json").read_bytes()
    assert one.index(b'"a"') < one.index(b'"b"')


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_bit_exact_with_metadata(tmp_path):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=gen)
    tensors = {
        "heads.w1": torch.randn(10, 3, 8, generator=gen, dtype=torch.float64),
        "heads.b1": torch.tensor([math.nan, math.inf, -0.0, 1e-45], dtype=torch.float32),
        "half": torch.randn(5, generator=gen).to(torch.bfloat16),
        "view": base.t(),  # not contiguous
        "tied": base,  # shares storage with "view"
        "alpha": torch.tensor([0.25, 0.75]),
        "step": torch.tensor(12, dtype=torch.int64),
    }
    meta = {"variant": "cpo", "best_epoch": "3", "config": json.dumps({"beta": 0.5})}
    path = save_checkpoint(tmp_path / "best.safetensors", tensors, meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta == meta
    assert set(loaded) == set(tensors)
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape
        # bit-exact, NaN and signed zero included
        assert torch.equal(loaded[name].reshape(-1).view(torch.uint8),
                           tensor.reshape(-1).view(torch.uint8))


def test_checkpoint_without_metadata(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"x": torch.arange(3)})
    tensors, meta = load_checkpoint(path)
    assert meta == {} and torch.equal(tensors["x"], torch.arange(3))


def test_checkpoint_bytes_are_reproducible(tmp_path):
    # safetensors writes metadata in hash-map order, which varies between calls
    tensors = {"b": torch.arange(5.0), "a": torch.ones(2, 3, dtype=torch.float16)}
    meta = {f"key{i}": str(i) for i in range(12)}
    blobs = {save_checkpoint(tmp_path / "c.safetensors", tensors, meta).read_bytes()
             for _ in range(10)}
    assert len(blobs) == 1
    blob = blobs.pop()
    header_len = struct.unpack("<Q", blob[:8])[0]
    assert header_len % 8 == 0
    header = json.loads(blob[8:8 + header_len])
    assert list(header["__metadata__"]) == sorted(meta)


def test_checkpoint_metadata_must_be_strings(tmp_path):
    with pytest.raises(ValueError, match="str"):
        save_checkpoint(tmp_path / "c.safetensors", {"x": torch.ones(1)}, {"epoch": 3})
    assert not (tmp_path / "c.safetensors").exists()


# ---------------------------------------------------------------- histories


def test_history_round_trip_exact(tmp_path):
    rng = np.random.default_rng(1)
    rows = [{"step": i, "alpha_P": float(rng.random()), "loss_P": float(rng.standard_normal()),
             "lr": 1e-4 * 0.9**i} for i in range(50)]
    rows[3]["loss_P"] = math.nan
    rows[10]["val.privileged.mAP"] = 0.123456789012345678  # only some rows carry it
    save_history(tmp_path / "steps.jsonl", rows)
    frame = load_history(tmp_path / "steps.jsonl")
    assert len(frame) == 50
    assert frame["step"].dtype == np.int64
    for column in ("alpha_P", "lr"):
        assert np.array_equal(frame[column].to_numpy(), np.array([r[column] for r in rows]))
    losses = frame["loss_P"].to_numpy()
    assert math.isnan(losses[3])
    assert np.array_equal(np.delete(losses, 3), np.delete([r["loss_P"] for r in rows], 3))
    val = frame["val.privileged.mAP"]
    assert val[10] == rows[10]["val.privileged.mAP"] and val.drop(10).isna().all()


def test_history_is_one_canonical_line_per_row(tmp_path):
    path = save_history(tmp_path / "h.jsonl", [{"b": 2, "a": 1.5}, {"a": math.inf}])
    assert path.read_text() == '{"a":1.5,"b":2}\n{"a":"Infinity"}\n'


def test_empty_history(tmp_path):
    path = save_history(tmp_path / "h.jsonl", [])
    assert load_history(path).empty


# ---------------------------------------------------------------- records


def test_record_round_trip_and_finished_flag(tmp_path):
    folder = tmp_path / "run"
    assert read_record(folder) is None and not is_finished(folder)
    write_record(folder, {"status": "running"})
    assert read_record(folder) == {"status": "running"} and not is_finished(folder)
    write_record(folder, {"status": "finished", "test": {"overall": {"mAP": math.nan}}})
    assert is_finished(folder)
    assert math.isnan(read_record(folder)["test"]["overall"]["mAP"])


def test_without_timings_drops_only_timings():
    record = {"status": "finished", "timings": {"train_s": 12.3}, "best_epoch": 4}
    assert without_timings(record) == {"status": "finished", "best_epoch": 4}


def test_environment_info_is_stable_and_storable():
    first, second = environment_info(), environment_info()
    assert first == second
    assert json_bytes(first) == json_bytes(second)
    assert first["packages"]["torch"] == torch.__version__
    assert first["packages"]["numpy"] == np.__version__
    assert first["torch_threads"] == torch.get_num_threads()
    assert first["cpu_count"] == os.cpu_count()
    assert first["deterministic_algorithms"] == torch.are_deterministic_algorithms_enabled()
    assert first["cuda_device"] is None or isinstance(first["cuda_device"], str)


def test_environment_info_follows_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert environment_info()["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- collecting


def metrics(value):
    return {group: {"mAP": value, "f1": value / 2, "accuracy": 0.9}
            for group in ("privileged", "non_privileged", "overall")}


def test_collect_records(tmp_path):
    runs = [("digits", "cpo", None, 0, "finished", 0.5),
            ("digits", "cpo", None, 1, "finished", 0.7),
            ("digits", "cpo", "no-grpo", 0, "finished", 0.4),
            ("digits", "bce", None, 0, "finished", 0.3),
            ("digits", "dpo", None, 0, "running", 0.9)]
    for dataset, variant, ablation, seed, status, value in runs:
        record = {"status": status, "test": metrics(value), "validation": metrics(value + 0.01),
                  "best_epoch": seed + 2, "timings": {"train_s": 1.0},
                  "config": {"variant": variant}}
        record["test"]["per_label_ap"] = [value] * 3
        write_record(run_dir(tmp_path, dataset, variant, ablation, seed), record)
    (tmp_path / "digits" / "bce" / "notes").mkdir()  # not a run folder: ignored
    (tmp_path / "digits" / "bce" / "notes" / "record.json").write_text("{}")

    frame = collect_records(tmp_path)
    assert list(frame.columns[:4]) == ["dataset", "variant", "ablation", "seed"]
    assert len(frame) == 4 and "dpo" not in set(frame["variant"])
    assert list(zip(frame["variant"], frame["ablation"], frame["seed"])) == [
        ("bce", "none", 0), ("cpo", "no-grpo", 0), ("cpo", "none", 0), ("cpo", "none", 1)]
    assert frame["test.privileged.mAP"].tolist() == [0.3, 0.4, 0.5, 0.7]
    assert frame["validation.overall.f1"].tolist() == pytest.approx([0.155, 0.205, 0.255, 0.355])
    assert frame["best_epoch"].tolist() == [2, 2, 2, 3]
    assert not any("per_label" in c or "timings" in c or "config" in c for c in frame.columns)
    # the tables' use: mean over seeds per method
    means = frame.groupby(["variant", "ablation"])["test.privileged.mAP"].mean()
    assert means[("cpo", "none")] == pytest.approx(0.6)


def test_collect_records_empty_tree(tmp_path):
    frame = collect_records(tmp_path / "missing")
    assert frame.empty and list(frame.columns) == ["dataset", "variant", "ablation", "seed"]
    assert isinstance(frame, pd.DataFrame)


def test_a_field_added_after_a_run_counts_as_its_default():
    from fairpo.run.store import identity_differences

    stored = {"lr": 0.001, "epochs": 5}  # trained before `head_activation` existed
    asked = {"lr": 0.001, "epochs": 5, "head_activation": "relu"}
    assert identity_differences(stored, asked, {"head_activation": "relu"}) == []
    assert identity_differences(stored, {**asked, "head_activation": "gelu"}, {"head_activation": "relu"}) == [
        "head_activation: stored 'relu', asked 'gelu'"]
    assert identity_differences(stored, asked) == ["head_activation: stored None, asked 'relu'"]


def test_compare_stores_names_the_fields_that_differ(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from compare_stores import compare, differences

    assert differences({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 0}) == ["b.c", "d"]
    record = dict(status="finished", test={"overall": {"mAP": 0.5}}, timings={"seconds": 1.0})
    for store_dir, value, seconds in ((tmp_path / "a", 0.5, 1.0), (tmp_path / "b", 0.6, 9.0)):
        folder = run_dir(store_dir, "digits", "bce", None, 0)
        write_record(folder, dict(record, test={"overall": {"mAP": value}}, timings={"seconds": seconds}))
        save_history(folder / store.STEP_HISTORY_FILE, [{"step": 0, "loss": 1.0}])
        save_history(folder / store.EPOCH_HISTORY_FILE, [{"epoch": 0}])
    assert compare(tmp_path / "a", tmp_path / "b") == [("digits/bce/seed0", ["test.overall.mAP"])]
    assert compare(tmp_path / "a", tmp_path / "b", ignore=("test",)) == [("digits/bce/seed0", [])]
