"""Fashion-MNIST: the IDX reader, the loader's search order and errors, --train_subset, and a tiny run end to end."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import dataset
import main_forget
import main_imp
import models
from utils import UsageError

FILES = dataset.readers.FASHION_MNIST_FILES


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the official IDX layout: magic 0x0000080<dims>, big-endian sizes, the bytes."""
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path, array, gz=True):
    payload = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)
    return path


def tiny_fashion(folder, n_train=200, n_test=60, gz=True, seed=0):
    """Four files in Fashion-MNIST's format: class-dependent images so a model can learn them."""
    rng = np.random.RandomState(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.randint(0, 60, size=(n, 28, 28))
        for i, label in enumerate(labels):  # a bright bar whose row encodes the class
            images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 230
        arrays[split] = (images.astype(np.uint8), labels.astype(np.uint8))
        write_idx(folder / FILES[f"{split}_images"], arrays[split][0], gz)
        write_idx(folder / FILES[f"{split}_labels"], arrays[split][1], gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_reads_the_official_format(tmp_path, gz):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    labels = np.array([7, 0, 9], dtype=np.uint8)
    image_file = write_idx(tmp_path / "images", images, gz)
    label_file = write_idx(tmp_path / "labels", labels, gz)
    read_images, read_labels = dataset.readers.read_idx(image_file, 3), dataset.readers.read_idx(label_file, 1)
    assert read_images.shape == (3, 28, 28) and read_images.dtype == np.uint8
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)


def test_idx_reader_refuses_truncated_and_foreign_files(tmp_path):
    payload = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    truncated = tmp_path / "train-images-idx3-ubyte"
    truncated.write_bytes(payload[:-10])
    with pytest.raises(UsageError, match="truncated") as err:
        dataset.readers.read_idx(truncated, 3)
    assert str(truncated) in str(err.value)
    labels_as_images = write_idx(tmp_path / "labels", np.zeros(5, dtype=np.uint8), gz=False)
    with pytest.raises(UsageError, match="magic 2049"):
        dataset.readers.read_idx(labels_as_images, 3)
    broken_gz = tmp_path / "x.gz"
    broken_gz.write_bytes(b"not gzip at all")
    with pytest.raises(UsageError, match="x.gz"):
        dataset.readers.read_idx(broken_gz, 1)


@pytest.mark.parametrize("layout", ["torchvision", "flat"])
def test_loader_reads_torchvision_layout_or_flat_folder(tmp_path, layout):
    folder = tmp_path / "FashionMNIST" / "raw" if layout == "torchvision" else tmp_path
    arrays = tiny_fashion(folder, gz=layout == "flat")
    raw = dataset.load_raw("fashionmnist", str(tmp_path))
    assert raw.train_images.shape == (200, 1, 28, 28) and raw.test_images.shape == (60, 1, 28, 28)
    assert raw.train_images.dtype == torch.uint8 and raw.train_labels.dtype == torch.int64
    np.testing.assert_array_equal(raw.train_images[:, 0].numpy(), arrays["train"][0])
    np.testing.assert_array_equal(raw.test_labels.numpy(), arrays["test"][1])
    assert (raw.mean, raw.std, raw.crop_padding, raw.flip) == ((0.2860,), (0.3530,), 2, True)


def test_missing_files_name_both_ways_to_get_them(tmp_path, monkeypatch):
    import torchvision

    class Offline:
        def __init__(self, root, download=False, **_):
            (Path(root) / "FashionMNIST" / "raw").mkdir(parents=True)
            (Path(root) / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"partial")
            raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)
    monkeypatch.setattr(dataset.readers, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "not-installed")
    with pytest.raises(UsageError) as err:
        dataset.load_raw("fashionmnist", str(tmp_path / "data"))
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message and "download failed" in message
    assert str(tmp_path / "data" / "FashionMNIST" / "raw") in message
    assert "\n" not in message
    assert not (tmp_path / "data").exists()  # the failed download is undone


def test_missing_files_are_downloaded_with_torchvision_where_a_network_exists(tmp_path, monkeypatch):
    import torchvision

    class Download:  # writes the official files where torchvision puts them
        def __init__(self, root, download=False, **_):
            assert download
            tiny_fashion(Path(root) / "FashionMNIST" / "raw")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Download)
    monkeypatch.setattr(dataset.readers, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "not-installed")
    raw = dataset.load_raw("fashionmnist", str(tmp_path / "data"))
    assert raw.train_images.shape[1:] == (1, 28, 28) and len(raw.test_labels) == 60


def test_mismatched_pair_is_refused(tmp_path):
    tiny_fashion(tmp_path)
    write_idx(tmp_path / FILES["test_labels"], np.zeros(59, dtype=np.uint8))  # one label short
    with pytest.raises(UsageError, match="not an official pair"):
        dataset.load_raw("fashionmnist", str(tmp_path))


@pytest.mark.parametrize("arch", sorted(models.MODELS))
def test_every_model_takes_28x28_single_channel_input(arch):
    model = models.build_model(arch, num_classes=10, in_channels=1, mean=(0.286,), std=(0.353,)).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


# ----------------------------------------------------------------------------- --train_subset


def test_train_subset_keeps_class_proportions_within_one():
    labels = np.repeat(np.arange(10), [600, 500, 700, 300, 650, 450, 550, 600, 620, 530])
    rng = np.random.RandomState(3)
    rng.shuffle(labels)
    for size in (10, 97, 1000, 2503, len(labels)):
        subset = dataset.stratified_subset(labels, 10, size, seed=1)
        assert len(subset) == size == len(np.unique(subset))
        assert np.all(np.diff(subset) > 0)
        exact = np.bincount(labels, minlength=10) * size / len(labels)
        assert np.all(np.abs(np.bincount(labels[subset], minlength=10) - exact) < 1)


def test_train_subset_is_deterministic_per_split_seed():
    labels = np.arange(5000) % 10
    first, again = dataset.stratified_subset(labels, 10, 700, 1), dataset.stratified_subset(labels, 10, 700, 1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, dataset.stratified_subset(labels, 10, 700, 2))


@pytest.mark.parametrize("size", [9, 0, -5, 1438])
def test_train_subset_out_of_range_is_refused(digits_raw, size):
    with pytest.raises(UsageError, match=f"--train_subset {size} is out of range.*from 10 to 1437"):
        dataset.build_data(digits_raw, 1, train_subset=size)


def test_train_subset_draws_before_the_validation_split(digits_raw):
    data = dataset.build_data(digits_raw, split_seed=4, train_subset=500)
    subset = dataset.stratified_subset(digits_raw.train_labels.numpy(), 10, 500, 4)
    assert len(data.train_labels) + len(data.val_labels) == 500
    assert set(data.official_train_indices) < set(subset)
    # the validation split is the usual one, taken within the subset
    train_pos, _ = dataset.validation_split(digits_raw.train_labels.numpy()[subset], 10, 4)
    np.testing.assert_array_equal(data.official_train_indices, subset[train_pos])
    np.testing.assert_array_equal(data.train_images.numpy(), digits_raw.train_images.numpy()[subset[train_pos]])
    assert data.train_subset == 500


# ----------------------------------------------------------------------------- end to end


def test_fashionmnist_end_to_end_with_train_subset(tmp_path, capsys):
    tiny_fashion(tmp_path / "data" / "FashionMNIST" / "raw", n_train=300, n_test=80)
    common = ["--dataset", "fashionmnist", "--data", str(tmp_path / "data"), "--arch", "resnet20s"]
    common += ["--train_subset", "200", "--no-progress", "--device", "cpu", "--batch_size", "64"]
    main_imp.main(
        [*common, "--epochs", "2", "--rate", "0.5", "--pruning_times", "2", "--save_dir", str(tmp_path / "omp")]
    )
    imp = json.loads((tmp_path / "omp" / "imp_results.json").read_text())
    assert imp["train_subset"] == 200
    mask = tmp_path / "omp" / "1model_SA_best.pth.tar"
    assert torch.load(mask, weights_only=True)["train_subset"] == 200
    results = main_forget.main(
        [*common, "--mask", str(mask), "--unlearn", "FT", "--unlearn_epochs", "1", "--class_to_replace", "3"]
        + ["--save_dir", str(tmp_path / "ft")]
    )
    saved = json.loads((tmp_path / "ft" / "FT_eval.json").read_text())
    assert saved["train_subset"] == 200 and saved["dataset"] == "fashionmnist"
    # the validation split takes 10% of each class of the 200: 18 per class stay in D, class 3 is forgotten
    assert results["num_forget"] == 18 and results["whole_class"]
    assert abs(results["remaining_weight_ratio"] - 0.5) < 0.01
    for key in ("UA", "RA", "TA", "MIA_efficacy"):
        assert 0 <= results[key] <= 100
    # a mask trained on the subset is refused for a run on another training set
    with pytest.raises(UsageError, match="--train_subset 200, not None; pass --train_subset 200"):
        main_forget.main(
            [*common[:6], "--no-progress", "--mask", str(mask), "--unlearn", "raw", "--save_dir", str(tmp_path / "x")]
        )


def test_a_dataset_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="registered twice"):
        dataset.register_dataset("fashionmnist", "again", random_count=1)(lambda **_: None)
    assert dataset.DATASETS["fashionmnist"].load is dataset.readers.load_fashion_mnist
