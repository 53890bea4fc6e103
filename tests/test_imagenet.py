"""The ImageNet folder reader on a tiny generated folder, and its class-wise forgetting end to end."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import dataset
import main_forget_imagenet
import main_imp
import utils
from dataset import imagenet

CLASSES = ("n01440764", "n01443537", "n01484850")
COLOURS = ((200, 30, 30), (30, 200, 30), (30, 30, 200))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """train/: 20 JPEGs per class, val/: 5, each image one colour per class with noise, of mixed sizes."""
    root, generator = tmp_path_factory.mktemp("imagenet"), np.random.default_rng(0)
    for split, count in (("train", 20), ("val", 5)):
        for wnid, colour in zip(CLASSES, COLOURS, strict=True):
            (root / split / wnid).mkdir(parents=True)
            for i in range(count):
                height, width = generator.integers(24, 48, size=2)
                pixels = np.clip(np.array(colour) + generator.normal(0, 10, (height, width, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / wnid / f"{wnid}_{i}.JPEG")
    return root


def test_the_folder_is_read_in_imagefolder_order_at_the_chosen_size(folder):
    raw = dataset.load_raw("imagenet", str(folder), image_size=16)
    assert raw.train_images.shape == (60, 3, 16, 16) and raw.test_images.shape == (15, 3, 16, 16)
    assert raw.train_images.dtype == torch.uint8 and raw.num_classes == 3
    assert raw.train_labels.tolist() == [0] * 20 + [1] * 20 + [2] * 20  # sorted class folders, as ImageFolder
    for label, colour in enumerate(COLOURS):  # each decoded image keeps its class's colour
        mean = raw.train_images[raw.train_labels == label].float().mean(dim=(0, 2, 3))
        assert torch.allclose(mean, torch.tensor(colour, dtype=torch.float32), atol=8)
    assert raw.info["classes"] == list(CLASSES)


def test_a_wrong_layout_or_too_much_memory_is_one_line(folder, tmp_path, monkeypatch):
    with pytest.raises(utils.UsageError, match="point --data at the folder holding train/ and val/"):
        dataset.load_raw("imagenet", str(tmp_path), image_size=16)
    (tmp_path / "train" / "n1").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "n1" / "a.JPEG")
    (tmp_path / "val" / "n2").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "n2" / "a.JPEG")
    with pytest.raises(utils.UsageError, match="different class folders"):
        dataset.load_raw("imagenet", str(tmp_path), image_size=16)
    monkeypatch.setattr(imagenet, "_physical_memory", lambda: 8 * 2**30)
    with pytest.raises(utils.UsageError, match=r"1281167 images take 179.\d GiB .* give --image_size 32 or less"):
        imagenet.check_memory(1_281_167, 224)


def test_class_wise_forgetting_of_imagenet_end_to_end(folder, tmp_path):
    common = ["--dataset", "imagenet", "--data", str(folder), "--image_size", "16", "--arch", "resnet18"]
    common += ["--imagenet_arch", "--device", "cpu", "--no-progress", "--batch_size", "16"]
    main_imp.main(
        [*common, "--epochs", "1", "--pruning_times", "2", "--rate", "0.5", "--save_dir", str(tmp_path / "omp")]
    )
    mask = str(tmp_path / "omp" / "1model_SA_best.pth.tar")
    # the original's script name: main_forget.py with --dataset imagenet --arch resnet18 --imagenet_arch
    main_forget_imagenet.main(["--data", str(folder), "--image_size", "16", "--device", "cpu", "--no-progress",
                               "--batch_size", "16", "--mask", mask, "--unlearn", "FT", "--unlearn_epochs", "1",
                               "--class_to_replace", "1", "--save_dir", str(tmp_path / "FT")])  # fmt: skip
    record = json.loads((tmp_path / "FT" / "FT_eval.json").read_text())
    data = dataset.build_data(dataset.load_raw("imagenet", str(folder), image_size=16), split_seed=1)
    # the original's ImageNet rule: every training image of the class is forgotten, and TA leaves the class out
    assert record["scenario"] == "class" and record["whole_class"]
    assert sorted(record["forget_indices"]) == np.flatnonzero(data.train_labels.numpy() == 1).tolist()
    assert record["identity"]["args"]["image_size"] == 16 and record["identity"]["args"]["dataset"] == "imagenet"


def test_image_size_is_for_imagenet_only(capsys):
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(main_imp.main, ["--dataset", "digits", "--image_size", "64", "--save_dir", "/nonexistent/x"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "--image_size 64 applies to --dataset imagenet only" in err
