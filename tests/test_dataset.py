import pickle

import numpy as np
import pytest
import torch

import dataset
from utils import UsageError


def test_digits_shapes_and_partition(digits_raw):
    raw = digits_raw
    assert raw.train_images.shape == (1437, 1, 8, 8) and raw.test_images.shape == (360, 1, 8, 8)
    assert raw.train_images.dtype == torch.uint8 and int(raw.train_images.max()) == 255
    # stratified: every class keeps ~80% of its samples in the training part
    train_counts = np.bincount(raw.train_labels.numpy(), minlength=10)
    test_counts = np.bincount(raw.test_labels.numpy(), minlength=10)
    assert np.all(np.abs(train_counts / (train_counts + test_counts) - 0.8) < 0.01)
    assert raw.crop_padding == 1 and raw.flip is False
    assert raw.info["test_split_seed"] == dataset.readers.DIGITS_TEST_SPLIT_SEED


def test_validation_split_sizes_disjoint_and_rule(digits_raw):
    labels = digits_raw.train_labels.numpy()
    train_idx, val_idx = dataset.validation_split(labels, 10, seed=1)
    assert len(np.intersect1d(train_idx, val_idx)) == 0
    assert len(train_idx) + len(val_idx) == len(labels)
    assert np.all(np.diff(train_idx) > 0)
    for c in range(10):
        assert (labels[val_idx] == c).sum() == int(0.1 * (labels == c).sum())
    # the rule, recomputed independently: one RandomState, class by class
    rng = np.random.RandomState(1)
    expected = np.hstack(
        [rng.choice(np.flatnonzero(labels == c), int(0.1 * (labels == c).sum()), replace=False) for c in range(10)]
    )
    np.testing.assert_array_equal(val_idx, expected)


def test_cifar10_sized_split():
    labels = np.repeat(np.arange(10), 5000)
    train_idx, val_idx = dataset.validation_split(labels, 10, seed=1)
    assert (len(train_idx), len(val_idx)) == (45000, 5000)


@pytest.mark.parametrize("class_to_replace,num", [(0, None), (0, 20), (-1, 100), (3, 5)])
def test_forget_selection_matches_rule(digits_raw, class_to_replace, num):
    labels = digits_raw.train_labels.numpy()[dataset.validation_split(digits_raw.train_labels.numpy(), 10, 1)[0]]
    got = dataset.select_forget(labels, class_to_replace, num, seed=2)
    candidates = np.arange(len(labels)) if class_to_replace == -1 else np.flatnonzero(labels == class_to_replace)
    expected = candidates if num is None else np.random.RandomState(1).choice(candidates, num, replace=False)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, dataset.select_forget(labels, class_to_replace, num, seed=2))
    if num is not None:
        assert len(np.unique(got)) == num
        assert not np.array_equal(got, dataset.select_forget(labels, class_to_replace, num, seed=3))


def test_build_data_index_space(digits_raw):
    data = dataset.build_data(digits_raw, split_seed=1)
    train_idx, val_idx = dataset.validation_split(digits_raw.train_labels.numpy(), 10, 1)
    assert torch.equal(data.train_images, digits_raw.train_images[train_idx])
    assert torch.equal(data.val_labels, digits_raw.train_labels[val_idx])
    np.testing.assert_array_equal(data.official_train_indices, train_idx)
    other = dataset.build_data(digits_raw, split_seed=5)
    assert not np.array_equal(other.official_train_indices, train_idx)


def test_batches_cover_subset_once_and_shuffle_is_seeded(digits_raw):
    data = dataset.build_data(digits_raw)
    subset = np.arange(0, 300, 3)
    batches = data.train_batches(subset, batch_size=32, augment=False, seed=4)
    labels = torch.cat([y for _, y in batches])
    assert len(batches) == 4 and len(labels) == 100
    assert sorted(labels.tolist()) == sorted(data.train_labels[subset].tolist())
    first = [x for x, _ in batches]
    again = [x for x, _ in data.train_batches(subset, batch_size=32, augment=False, seed=4)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    batches.set_epoch(1)
    assert not torch.equal(torch.cat(first), torch.cat([x for x, _ in batches]))
    x, _ = next(iter(data.eval_batches("test")))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_device_augmentation_matches_per_image_crop_and_flip():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=gen)
    out = dataset.augment(images, 4, True, torch.Generator().manual_seed(7))
    # replay the same draws and crop/flip every image explicitly
    replay = torch.Generator().manual_seed(7)
    offsets = torch.randint(0, 9, (16, 2), generator=replay)
    flips = torch.rand(16, generator=replay) < 0.5
    for b in range(16):
        padded = torch.zeros(3, 40, 40, dtype=torch.uint8)
        padded[:, 4:36, 4:36] = images[b]
        i, j = offsets[b].tolist()
        expected = padded[:, i : i + 32, j : j + 32]
        if flips[b]:
            expected = expected.flip(2)
        assert torch.equal(out[b], expected)
    assert 0 < flips.sum() < 16 and len({tuple(o) for o in offsets.tolist()}) > 1


def test_digits_augmentation_never_flips():
    images = torch.arange(64, dtype=torch.uint8).reshape(1, 1, 8, 8).repeat(200, 1, 1, 1)
    out = dataset.augment(images, 1, False, torch.Generator().manual_seed(0))
    # with padding 1 a crop shifts by at most one pixel; a flip would reverse the row order
    for b in range(200):
        row = out[b, 0, 4]
        nonzero = row[row > 0].int()
        assert torch.all(torch.diff(nonzero) > 0)


def _write_cifar_batch(path, images, labels, label_key):
    with open(path, "wb") as handle:
        pickle.dump({"data": images.reshape(len(images), -1), label_key: list(labels), "batch_label": "x"}, handle)


def test_cifar10_reader_on_tiny_files(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.RandomState(0)
    parts = []
    for i in range(1, 6):
        images = rng.randint(0, 256, (4, 3, 32, 32)).astype(np.uint8)
        labels = rng.randint(0, 10, 4)
        parts.append((images, labels))
        _write_cifar_batch(root / f"data_batch_{i}", images, labels, "labels")
    test_images = rng.randint(0, 256, (3, 3, 32, 32)).astype(np.uint8)
    _write_cifar_batch(root / "test_batch", test_images, [1, 2, 3], "labels")
    raw = dataset.load_raw("cifar10", str(tmp_path), download=False)
    assert raw.train_images.shape == (20, 3, 32, 32) and raw.num_classes == 10
    np.testing.assert_array_equal(raw.train_images.numpy(), np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(raw.train_labels.numpy(), np.concatenate([p[1] for p in parts]))
    np.testing.assert_array_equal(raw.test_images.numpy(), test_images)
    assert raw.test_labels.tolist() == [1, 2, 3]


def test_cifar100_reader_uses_fine_labels(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    images = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3, 32, 32)
    for name in ("train", "test"):
        with open(root / name, "wb") as handle:
            pickle.dump({"data": images.reshape(2, -1), "fine_labels": [42, 99], "coarse_labels": [1, 2]}, handle)
    raw = dataset.load_raw("cifar100", str(tmp_path), download=False)
    assert raw.num_classes == 100 and raw.train_labels.tolist() == [42, 99]
    np.testing.assert_array_equal(raw.test_images.numpy(), images)


def test_cifar_reader_refuses_foreign_pickle(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for name in ("train", "test"):
        with open(root / name, "wb") as handle:
            pickle.dump({"data": Evil(), "fine_labels": [0]}, handle)
    with pytest.raises(UsageError, match="refusing to load"):
        dataset.load_raw("cifar100", str(tmp_path), download=False)
    assert not marker.exists()


def test_svhn_reader_on_tiny_mat_files(tmp_path):
    from scipy.io import savemat

    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (32, 32, 3, 5)).astype(np.uint8)
    savemat(tmp_path / "train_32x32.mat", {"X": images, "y": np.array([[10], [1], [2], [3], [9]])})
    savemat(tmp_path / "test_32x32.mat", {"X": images[..., :2], "y": np.array([[10], [5]])})
    raw = dataset.load_raw("svhn", str(tmp_path), download=False)
    assert raw.train_images.shape == (5, 3, 32, 32)
    assert raw.train_labels.tolist() == [0, 1, 2, 3, 9] and raw.test_labels.tolist() == [0, 5]
    np.testing.assert_array_equal(raw.train_images[2].numpy(), images[..., 2].transpose(2, 0, 1))


def test_tiny_imagenet_reader_on_folder_layout(tmp_path):
    from PIL import Image

    def write_png(image, path):
        array = image.numpy().transpose(1, 2, 0)
        Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(path, format="PNG")

    wnids = ["n001", "n002"]
    (tmp_path / "wnids.txt").write_text("\n".join(wnids) + "\n")
    colours = {}
    for c, wnid in enumerate(wnids):
        folder = tmp_path / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(3):
            image = torch.full((3, 64, 64), 40 * c + 10 * i, dtype=torch.uint8)
            colours[(c, i)] = 40 * c + 10 * i
            # PNG bytes in a .JPEG name are decoded by content, and keep pixel values exact
            write_png(image, str(folder / f"{wnid}_{i}.JPEG"))
    (tmp_path / "val" / "images").mkdir(parents=True)
    write_png(torch.full((3, 64, 64), 7, dtype=torch.uint8), str(tmp_path / "val" / "images" / "val_0.JPEG"))
    write_png(torch.full((1, 64, 64), 9, dtype=torch.uint8), str(tmp_path / "val" / "images" / "val_1.JPEG"))
    (tmp_path / "val" / "val_annotations.txt").write_text(
        "val_0.JPEG\tn002\t0\t0\t1\t1\nval_1.JPEG\tn001\t0\t0\t1\t1\n"
    )
    raw = dataset.load_raw("TinyImagenet", data_dir=str(tmp_path))
    assert raw.train_images.shape == (6, 3, 64, 64) and raw.num_classes == 2
    assert raw.train_labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert raw.train_images[4].unique().tolist() == [colours[(1, 1)]]
    assert raw.test_labels.tolist() == [1, 0] and raw.test_images.shape == (2, 3, 64, 64)
    assert raw.test_images[1].unique().tolist() == [9]  # grey image expanded to RGB


@pytest.mark.parametrize("name,expected", [("cifar10", "data_batch_1"), ("svhn", "train_32x32.mat")])
def test_missing_files_error_names_path_and_files(tmp_path, name, expected):
    with pytest.raises(UsageError, match=expected) as info:
        dataset.load_raw(name, str(tmp_path / "nowhere"), download=False)
    assert "nowhere" in str(info.value)


def test_unknown_dataset_lists_choices():
    with pytest.raises(UsageError, match="choose from .*digits"):
        dataset.load_raw("mnist")


# The official training-set sizes of the registered datasets that are not embedded (no files needed here).
OFFICIAL_TRAIN_SIZE = {"cifar10": 50_000, "cifar100": 50_000, "svhn": 73_257, "TinyImagenet": 100_000,
                       "fashionmnist": 60_000, "imagenet": 1_281_167}  # fmt: skip


@pytest.mark.parametrize("entry", list(dataset.DATASETS.values()), ids=lambda entry: entry.name)
def test_a_registration_states_its_facts_and_the_random_count_is_a_tenth_of_d(entry, digits_raw):
    """The random-forgetting default is 10% of D, the training set after the 10% validation split."""
    assert entry.help and entry.load is not None and entry.random_count > 0
    size = len(digits_raw.train_labels) if entry.name == "digits" else OFFICIAL_TRAIN_SIZE.get(entry.name)
    if size is None:
        pytest.skip(f"{entry.name}: its training-set size is not listed in this test")
    labels = digits_raw.train_labels.numpy() if entry.name == "digits" else np.arange(size) % 10
    d = len(dataset.validation_split(labels, 10)[0])
    assert abs(entry.random_count - d / 10) <= 1, (entry.name, entry.random_count, d)
    assert entry.name in dataset.dataset_help()
