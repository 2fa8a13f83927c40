"""Data sets, the privileged split and the image transforms, on tiny trees built here."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader

from fairpo.data import DIGITS_MEAN, DIGITS_STD, ImageTransform, load_dataset, privileged_split

# ---------------------------------------------------------------------------------------------
# privileged split


def naive_privileged(freqs, fraction):
    """The definition, spelled out: sort labels by (frequency, index), take round-half-up(fraction·T)."""
    count = int(fraction * len(freqs) + 0.5)
    return sorted(sorted(range(len(freqs)), key=lambda t: (freqs[t], t))[:count])


@pytest.mark.parametrize("num_labels, expected", [(80, 16), (81, 16), (10, 2), (14, 3)])
def test_default_privileged_count_and_members(num_labels, expected):
    rng = np.random.default_rng(num_labels)
    freqs = rng.integers(0, 30, size=num_labels)  # many ties on purpose
    names = [f"l{t}" for t in range(num_labels)]
    chosen = privileged_split(freqs, names)
    assert len(chosen) == expected
    assert chosen == naive_privileged(freqs.tolist(), 0.2)
    rest = sorted(set(range(num_labels)) - set(chosen))
    assert max(freqs[chosen]) <= min(freqs[rest])


def test_ties_are_broken_by_index():
    assert privileged_split([5] * 10, list("abcdefghij")) == [0, 1]
    assert privileged_split([3, 1, 1, 1, 9], list("abcde"), fraction=0.4) == [1, 2]


def test_explicit_privileged_by_name_index_or_string():
    names = ["cat", "dog", "bird", "fish"]
    freqs = [1, 2, 3, 4]
    assert privileged_split(freqs, names, privileged=["fish", "dog"]) == [1, 3]
    assert privileged_split(freqs, names, privileged=[3, np.int64(0)]) == [0, 3]
    assert privileged_split(freqs, names, privileged="bird, 0") == [0, 2]


@pytest.mark.parametrize("privileged, message", [
    (["cat", "zebra"], "unknown privileged label 'zebra'"),
    ([4], "index 4 is outside"),
    (["cat", 0], "listed twice"),
    ([], "between 1 and 3"),
    (["cat", "dog", "bird", "fish"], "between 1 and 3"),
])
def test_bad_explicit_privileged(privileged, message):
    with pytest.raises(ValueError, match=message):
        privileged_split([1, 2, 3, 4], ["cat", "dog", "bird", "fish"], privileged=privileged)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.2])
def test_fraction_outside_open_unit_interval(fraction):
    with pytest.raises(ValueError, match="privileged_fraction"):
        privileged_split([1, 2, 3], ["a", "b", "c"], fraction=fraction)


# ---------------------------------------------------------------------------------------------
# digits


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_digits_same_seed_same_data_other_seed_other_data(digits):
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(digits, split).images, getattr(again, split).images)
        assert torch.equal(getattr(digits, split).labels, getattr(again, split).labels)
        assert not torch.equal(getattr(digits, split).images, getattr(other, split).images)


def test_digits_sizes_and_item_shape(digits):
    assert (len(digits.train), len(digits.val), len(digits.test)) == (2160, 240, 2000)
    x, y = digits.train[5]
    assert x.shape == (1, 32, 32) == digits.input_shape and x.dtype == torch.float32
    assert y.shape == (10,) and y.dtype == torch.float32
    torch.testing.assert_close(x, (digits.train.images[5] - DIGITS_MEAN) / DIGITS_STD)
    assert digits.label_names == [str(d) for d in range(10)] and digits.kind == "images"


def test_each_handwritten_sample_is_in_one_split(digits):
    train, val, test = (set(getattr(digits, s).placements[:, 2].tolist()) for s in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test
    assert len(train | val | test) > 1500  # nearly all 1797 samples are used somewhere


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_digits_are_long_tailed(seed, digits):
    bundle = digits if seed == 0 else load_dataset("digits", seed=seed)
    freqs = np.array(bundle.train_frequencies)
    np.testing.assert_array_equal(freqs, bundle.train.labels.sum(0).numpy())
    assert freqs.max() >= 10 * freqs.min()
    assert bundle.test.labels.sum(0).min() >= 20  # the rarest digit is still measurable on test


def test_rare_digits_look_like_frequent_ones(digits):
    raw = load_digits()
    centroids = np.stack([raw.data[raw.target == d].mean(0) for d in range(10)])
    distance = ((centroids[:, None] - centroids[None]) ** 2).sum(-1)
    np.fill_diagonal(distance, np.inf)
    top3 = np.argsort(digits.train_frequencies)[::-1][:3]
    assert len(digits.privileged) == 2
    for rare in digits.privileged:
        assert distance[rare].argmin() in top3  # its closest look-alike is among the most frequent


def test_labels_are_the_digits_actually_pasted(digits):
    glyphs = load_digits().images / 16.0
    for split in ("train", "test"):
        ds = getattr(digits, split)
        rebuilt = np.zeros((len(ds), 32, 32), dtype=np.float32)
        labels = np.zeros((len(ds), 10), dtype=np.float32)
        boxes = {}
        for canvas, digit, source, top, left in ds.placements:
            region = rebuilt[canvas, top:top + 8, left:left + 8]
            assert not region.any(), "glyphs overlap"
            rebuilt[canvas, top:top + 8, left:left + 8] = glyphs[source]
            labels[canvas, digit] = 1
            boxes.setdefault(canvas, []).append(digit)
        np.testing.assert_array_equal(rebuilt, ds.images[:, 0].numpy())
        np.testing.assert_array_equal(labels, ds.labels.numpy())
        assert all(1 <= len(v) <= 4 and len(set(v)) == len(v) for v in boxes.values())
    sources = digits.train.placements[:, 2]
    np.testing.assert_array_equal(load_digits().target[sources], digits.train.placements[:, 1])


def test_digits_options():
    bundle = load_dataset("digits", num_train=50, num_test=20, image_size=48, channels=3, val_fraction=0.2)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (40, 10, 20)
    x, _ = bundle.train[3]
    assert x.shape == (3, 48, 48) == bundle.input_shape and torch.equal(x[0], x[2])
    assert torch.equal(bundle.train[torch.tensor([2, 3])][0][1], x)  # a batch holds the same items
    assert bundle.val[0][0].shape == (3, 48, 48)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(val_fraction=0), ValueError, "val_fraction"),
    (dict(val_fraction=1.2), ValueError, "val_fraction"),
    (dict(privileged_fraction=1.0), ValueError, "privileged_fraction"),
    (dict(num_train=3), ValueError, "validation split of 0"),
    (dict(num_test=0), ValueError, "num_test"),
    (dict(size=10), ValueError, r"unknown option\(s\) \['size'\]"),
    (dict(augment=True), ValueError, r"unknown option\(s\) \['augment'\].*it takes: num_train"),
    (dict(crop_scale=(0.8, 1.0)), ValueError, r"unknown option\(s\) \['crop_scale'\]"),
    (dict(privileged=["7", "eleven"]), ValueError, "'eleven'"),
    (dict(root="/tmp"), ValueError, "root=None"),
])
def test_digits_bad_input(kwargs, error, message):
    with pytest.raises(error, match=message):
        load_dataset("digits", **kwargs)


def test_unknown_data_set():
    with pytest.raises(ValueError, match="digits, coco, nuswide, features"):
        load_dataset("cifar")


def test_describe_is_json_and_complete(digits):
    record = json.loads(json.dumps(digits.describe()))
    assert record["sizes"] == {"train": 2160, "val": 240, "test": 2000}
    assert record["privileged"] == digits.privileged
    assert record["privileged_names"] == [digits.label_names[i] for i in digits.privileged]
    assert record["train_frequencies"] == digits.train_frequencies
    assert record["options"]["mean"] == [DIGITS_MEAN] and record["options"]["seed"] == 0


# ---------------------------------------------------------------------------------------------
# COCO- and NUS-WIDE-shaped trees


def write_jpeg(path, color, size=(20, 14)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, quality=95)


def make_coco(root, n_train=6):
    # category ids out of order and with a gap: labels must follow id order
    categories = [{"id": 7, "name": "zebra"}, {"id": 2, "name": "bicycle"}, {"id": 3, "name": "car"}]
    truth = {}
    for folder, n in (("train2014", n_train), ("val2014", 3)):
        images, annotations = [], []
        for i in range(n):
            image_id = 100 - i  # ids descending in file order
            name = f"COCO_{folder}_{image_id:012d}.jpg"
            write_jpeg(root / folder / name, (10 * i, 100, 200))
            images.append({"id": image_id, "file_name": name, "width": 20, "height": 14})
            cats = [] if i == 1 else [[7], [2, 3], [3, 3, 7]][i % 3]  # image 1 has no annotation
            annotations += [{"id": len(annotations) + 1, "image_id": image_id, "category_id": c} for c in cats]
            truth[name] = {2: 0, 3: 0, 7: 0} | {c: 1 for c in cats}
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{folder}.json").write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return {name: [v[2], v[3], v[7]] for name, v in truth.items()}


def split_truth(ds):
    return {p.rsplit("/", 1)[-1]: label.tolist() for p, label in zip(ds.paths, ds.labels)}


def test_coco_tree(tmp_path):
    truth = make_coco(tmp_path)
    bundle = load_dataset("coco", tmp_path, image_size=16, val_fraction=0.2, seed=3)
    assert bundle.label_names == ["bicycle", "car", "zebra"]  # category-id order
    seen = split_truth(bundle.train) | split_truth(bundle.val)
    assert len(bundle.train) == 5 and len(bundle.val) == 1 and len(seen) == 6  # disjoint, all of train2014
    assert all(seen[name] == truth[name] for name in seen)
    assert seen["COCO_train2014_000000000099.jpg"] == [0, 0, 0]  # no annotation: kept, all negative
    test = split_truth(bundle.test)
    assert sorted(test) == [f"COCO_val2014_{i:012d}.jpg" for i in (98, 99, 100)]
    assert all(test[name] == truth[name] for name in test)
    x, y = bundle.test[0]
    assert x.shape == (3, 16, 16) == bundle.input_shape
    expected = (torch.tensor([20, 100, 200]) / 255.0 - 0.5) / 0.5  # image 98 is the solid colour (20, 100, 200)
    torch.testing.assert_close(x.mean((1, 2)), expected, atol=0.02, rtol=0)
    assert bundle.train_frequencies == bundle.train.labels.sum(0).long().tolist()

    dropped = load_dataset("coco", tmp_path, image_size=16, val_fraction=0.2, drop_empty=True)
    names = set(split_truth(dropped.train)) | set(split_truth(dropped.val))
    assert len(names) == 5 and "COCO_train2014_000000000099.jpg" not in names
    assert len(dropped.test) == 2


def test_coco_missing_pieces_show_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="instances_train2014.json"):
        load_dataset("coco", tmp_path / "nowhere")
    make_coco(tmp_path)
    (tmp_path / "annotations" / "instances_val2014.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"instances_val2014.json not found(.|\n)*train2014/"):
        load_dataset("coco", tmp_path)
    with pytest.raises(FileNotFoundError, match="needs root="):
        load_dataset("coco")


def test_coco_missing_images_are_counted_and_left_out(tmp_path, caplog):
    make_coco(tmp_path)
    (tmp_path / "train2014" / "COCO_train2014_000000000097.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="fairpo.data"):
        bundle = load_dataset("coco", tmp_path, val_fraction=0.2)
    assert bundle.skipped["train"] == {"total": 6, "missing": 1, "unreadable": 0}
    assert len(bundle.train) + len(bundle.val) == 5
    assert not any(p.endswith("097.jpg") for p in bundle.train.paths + bundle.val.paths)
    assert len([r for r in caplog.records if r.name == "fairpo.data.images"]) == 1


CONCEPTS = ["animal", "sky", "water", "zebra"]


def make_nuswide(root, train_rows, test_rows, bad=True):
    (root / "ConceptsList").mkdir(parents=True)
    (root / "ConceptsList" / "Concepts81.txt").write_text("\n".join(CONCEPTS) + "\n")
    rng = np.random.default_rng(0)
    labels = {}
    for tag, n in (("Train", train_rows), ("Test", test_rows)):
        lines = [f"{CONCEPTS[i % 4]}\\{i:04d}_{tag}.jpg" for i in range(n)]
        (root / "ImageList").mkdir(exist_ok=True)
        (root / "ImageList" / f"{tag}Imagelist.txt").write_text("\r\n".join(lines) + "\r\n")  # Windows endings
        y = (rng.random((n, 4)) < 0.5).astype(int)
        labels[tag] = y
        for j, concept in enumerate(CONCEPTS):
            path = root / "Groundtruth" / "TrainTestLabels" / f"Labels_{concept}_{tag}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{v} \n" for v in y[:, j]))
        for i, line in enumerate(lines):
            write_jpeg(root / "Flickr" / line.replace("\\", "/"), (i, 2 * i, 3 * i), size=(40, 30))
    if bad:  # a partial copy: one missing, one not an image, one cut-off download
        (root / "Flickr" / "sky" / "0001_Train.jpg").unlink()
        (root / "Flickr" / "water" / "0002_Train.jpg").write_bytes(b"<html>photo unavailable</html>")
        noise = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        cut = root / "Flickr" / "zebra" / "0003_Train.jpg"
        noise.save(cut, quality=95)
        cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    return labels


def test_nuswide_partial_copy_is_screened_with_one_line(tmp_path, caplog):
    labels = make_nuswide(tmp_path, train_rows=12, test_rows=4)
    with caplog.at_level(logging.WARNING, logger="fairpo.data"):
        bundle = load_dataset("nuswide", tmp_path, image_size=8, val_fraction=0.25)
    records = [r for r in caplog.records if r.name == "fairpo.data.images"]
    assert len(records) == 1 and "\n" not in records[0].getMessage()
    assert "3 of 12 train images (1 missing, 2 unreadable)" in records[0].getMessage()
    assert bundle.skipped["train"] == {"total": 12, "missing": 1, "unreadable": 2}
    assert bundle.label_names == CONCEPTS
    kept = [i for i in range(12) if i not in (1, 2, 3)]
    assert len(bundle.train) + len(bundle.val) == 9 and len(bundle.val) == 2
    by_name = {p.rsplit("/", 1)[-1]: y for ds in (bundle.train, bundle.val) for p, y in zip(ds.paths, ds.labels)}
    for i in kept:
        assert by_name[f"{i:04d}_Train.jpg"].tolist() == labels["Train"][i].tolist()
    assert torch.equal(bundle.test.labels, torch.tensor(labels["Test"], dtype=torch.float32))
    for ds in (bundle.train, bundle.val, bundle.test):  # a whole epoch reads every kept image
        for x, _ in DataLoader(ds, batch_size=4):
            assert x.shape[1:] == (3, 8, 8)


def test_nuswide_verify_modes(tmp_path):
    make_nuswide(tmp_path, train_rows=12, test_rows=4)
    exists = load_dataset("nuswide", tmp_path, verify="exists", val_fraction=0.25)
    assert exists.skipped["train"] == {"total": 12, "missing": 1, "unreadable": 0}
    full = load_dataset("nuswide", tmp_path, verify="full", val_fraction=0.25)
    assert full.skipped["train"] == {"total": 12, "missing": 1, "unreadable": 2}
    with pytest.raises(ValueError, match="verify"):
        load_dataset("nuswide", tmp_path, verify="maybe")


def test_nuswide_bad_label_files(tmp_path):
    make_nuswide(tmp_path, train_rows=6, test_rows=3, bad=False)
    path = tmp_path / "Groundtruth" / "TrainTestLabels" / "Labels_sky_Test.txt"
    path.write_text("0\n2\n1\n")
    with pytest.raises(ValueError, match=r"Labels_sky_Test.txt line 2 holds '2'"):
        load_dataset("nuswide", tmp_path)
    path.write_text("0\n1\n")
    with pytest.raises(ValueError, match="has 2 labels but TestImagelist.txt lists 3"):
        load_dataset("nuswide", tmp_path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="Labels_sky_Test.txt not found(.|\n)*Groundtruth"):
        load_dataset("nuswide", tmp_path)


# ---------------------------------------------------------------------------------------------
# features


def features_arrays(n, d=5, t=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), (rng.random((n, t)) < 0.4).astype(np.float32)


def test_features_npz(tmp_path):
    x, y = features_arrays(30)
    np.savez(tmp_path / "train.npz", x=x, y=y, label_names=np.array(["a", "b", "c"]))
    np.savez(tmp_path / "test.npz", x=x[:7], y=y[:7])
    bundle = load_dataset("features", tmp_path, val_fraction=0.2, seed=1)
    assert bundle.kind == "features" and bundle.input_shape == (5,) and bundle.label_names == ["a", "b", "c"]
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (24, 6, 7)
    rows = torch.cat([bundle.train.indices, bundle.val.indices]).sort().values
    assert torch.equal(rows, torch.arange(30))
    for i in (0, 5):
        xi, yi = bundle.val[i]
        r = int(bundle.val.indices[i])
        assert torch.equal(xi, torch.from_numpy(x[r])) and torch.equal(yi, torch.from_numpy(y[r]))
    assert bundle.train_frequencies == y[bundle.train.indices.numpy()].sum(0).astype(int).tolist()


def test_features_csv_with_num_labels_or_names_file(tmp_path):
    x, y = features_arrays(20)
    np.savetxt(tmp_path / "train.csv", np.hstack([x, y]), delimiter=",")
    np.savetxt(tmp_path / "test.csv", np.hstack([x, y])[:5], delimiter=",")
    with pytest.raises(ValueError, match="num_labels"):
        load_dataset("features", tmp_path)
    bundle = load_dataset("features", tmp_path, num_labels=3)
    assert bundle.input_shape == (5,) and bundle.label_names == ["label_0", "label_1", "label_2"]
    torch.testing.assert_close(bundle.test.features, torch.from_numpy(x[:5]))
    (tmp_path / "label_names.txt").write_text("red\ngreen\nblue\n")
    named = load_dataset("features", tmp_path)
    assert named.label_names == ["red", "green", "blue"] and named.input_shape == (5,)
    with pytest.raises(ValueError, match="num_labels=4 but"):
        load_dataset("features", tmp_path, num_labels=4)
    (tmp_path / "label_names.txt").write_text("red\ngreen\nblue\nalpha\n")  # a feature column read as labels
    with pytest.raises(ValueError, match=r"train.csv: labels must be 0 or 1, found .* label column 0"):
        load_dataset("features", tmp_path)


def test_features_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.npz, test.npz"):
        load_dataset("features", tmp_path)
    x, y = features_arrays(10)
    y[4, 2] = 0.5
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "test.npz", x=x, y=np.clip(y, 0, 0))
    with pytest.raises(ValueError, match=r"train.npz: labels must be 0 or 1, found 0.5 at row 4, label column 2"):
        load_dataset("features", tmp_path)
    x[0, 0] = np.nan
    np.savez(tmp_path / "train.npz", x=x, y=np.round(y))
    with pytest.raises(ValueError, match="non-finite"):
        load_dataset("features", tmp_path)
    np.savetxt(tmp_path / "train.csv", np.hstack([x, y]), delimiter=",")
    with pytest.raises(FileNotFoundError, match="both a .npz and a .csv"):
        load_dataset("features", tmp_path, num_labels=3)
    (tmp_path / "train.csv").unlink()
    np.savez(tmp_path / "train.npz", x=np.nan_to_num(x), y=np.round(y))
    with pytest.raises(ValueError, match="validation split of 0"):
        load_dataset("features", tmp_path, val_fraction=0.01)
    with pytest.raises(ValueError, match="'nope'"):
        load_dataset("features", tmp_path, privileged=["nope"])


# ---------------------------------------------------------------------------------------------
# transforms


def test_eval_transform_resizes_and_normalises():
    image = Image.new("RGB", (40, 20), (255, 0, 51))
    t = ImageTransform(8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    x = t(image)
    assert x.shape == (3, 8, 8)
    expected = torch.tensor([(1 - 0.5) / 0.25, (0 - 0.5) / 0.5, (0.2 - 0.5) / 1.0]).view(3, 1, 1).expand(3, 8, 8)
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)


def test_transform_description_keeps_the_feature_cache_names():
    # describe() goes into every image split's fingerprint, hence into its feature cache's file name
    assert ImageTransform(32, (0.046,), (0.184,), channels=1).describe() == dict(
        image_size=32, mean=[0.046], std=[0.184], channels=1, augment=False, flip=True, crop_scale=[0.08, 1.0])


def test_the_example_features_are_the_same_bytes_every_time_and_long_tailed(tmp_path):
    from fairpo.data.features import data_fingerprint, write_example

    a, b = write_example(tmp_path / "a"), write_example(tmp_path / "b")
    assert (a / "train.npz").read_bytes() == (b / "train.npz").read_bytes()
    assert data_fingerprint("features", a) == data_fingerprint("features", b)
    bundle = load_dataset("features", a)
    counts = bundle.train.labels.sum(0)
    assert len(bundle.label_names) == 12 and counts[0] > 5 * counts[-1]
    assert [bundle.label_names[i] for i in bundle.privileged] == ["rare_4", "rare_5"]  # the rarest 20 %
