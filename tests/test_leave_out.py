"""main_imp.py --leave_out_forget (a mask trained without the forget set) and report.py --reference clean."""

import collections
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ARCH

import dataset
import main_forget
import main_imp
import report
from dataset.batches import Batches
from reporting import collect, references
from utils import UsageError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

FORGET = ["--class_to_replace", "-1", "--num_indexes_to_replace", "60"]
TRAIN = [*ARCH, "--epochs", "1", "--pruning_times", "2", "--rate", "0.5", "--no-aug", "--seed", "1"]


def image_counts(images) -> collections.Counter:
    return collections.Counter(row.numpy().tobytes() for row in images.cpu())


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    """An inherited mask (trained on all of D) and a clean one (D_f of forget seed 1 left out), same seeds;
    the images every clean training batch held are counted."""
    out = tmp_path_factory.mktemp("masks")
    main_imp.main([*TRAIN, "--save_dir", str(out / "inherited")])
    seen = collections.Counter()
    real = Batches.iterate_from

    def counting(self, first_batch):
        yielded = 0
        for images, labels in real(self, first_batch):
            yielded += len(labels)
            yield images, labels
        if self.shuffle:  # a training pass (evaluation batches are not shuffled): the raw images it held
            assert first_batch == 0 and yielded == len(self.indices)
            seen.update(image_counts(self.images[self.indices]))

    Batches.iterate_from = counting
    try:
        main_imp.main([*TRAIN, "--leave_out_forget", *FORGET, "--forget_seed", "1", "--save_dir", str(out / "clean")])
    finally:
        Batches.iterate_from = real
    return out, seen


def test_the_forget_set_never_enters_a_training_batch(masks):
    out, seen = masks
    args = main_forget.make_parser().parse_args([*ARCH, *FORGET, "--seed", "1"])
    data = dataset.load_data(args)
    forget = dataset.choose_forget_set(data.train_labels.numpy(), data.num_classes, args)
    retain = image_counts(data.train_images[torch.from_numpy(forget.retain_indices)])
    rounds_epochs = 2  # two rounds of one epoch: every D_r image exactly twice, no D_f image ever
    assert seen == collections.Counter({image: rounds_epochs * count for image, count in retain.items()})
    left = json.loads((out / "clean" / "imp_results.json").read_text())["identity"]["inputs"]["left_out"]
    assert left["count"] == 60 and left["scenario"] == "random"


def test_a_clean_mask_differs_and_a_resume_with_another_forget_set_is_refused(masks):
    out, _ = masks
    inherited, clean = (
        torch.load(out / name / "1model_SA_best.pth.tar", weights_only=True) for name in ("inherited", "clean")
    )
    masks_of = lambda saved: {k: v for k, v in saved["state_dict"].items() if k.endswith("weight_mask")}  # noqa: E731
    assert masks_of(inherited).keys() == masks_of(clean).keys()
    assert any(not torch.equal(masks_of(inherited)[k], masks_of(clean)[k]) for k in masks_of(clean))
    with pytest.raises(UsageError, match="holds another experiment: the forget set left out of training differs"):
        main_imp.main([*TRAIN, "--leave_out_forget", *FORGET, "--forget_seed", "2", "--resume",
                       "--save_dir", str(out / "clean")])  # fmt: skip


def test_report_measures_inherited_runs_against_the_clean_retrain(masks, tmp_path):
    out, _ = masks
    runs = {}
    for mask, method in (("inherited", "retrain"), ("inherited", "FT"), ("clean", "retrain")):
        flags = [
            "--seed",
            "1",
            "--unlearn",
            method,
            "--unlearn_epochs",
            "1",
            "--save_dir",
            str(tmp_path / mask / method),
        ]
        runs[mask, method] = main_forget.main(
            [*ARCH, *FORGET, *flags, "--mask", str(out / mask / "1model_SA_best.pth.tar")]
        )
    loaded, problems = collect.load_runs([tmp_path])
    assert not problems and sum(run["clean_mask"] for run in loaded) == 1
    rows = {row["method"]: row for row in collect.summarise(collect.against_clean_retrain(loaded))}
    assert set(rows) == {"retrain", "FT", collect.INHERITED_RETRAIN}
    clean = runs["clean", "retrain"]
    for method, key in (("FT", ("inherited", "FT")), (collect.INHERITED_RETRAIN, ("inherited", "retrain"))):
        assert rows[method]["UA_gap"] == pytest.approx(abs(runs[key]["UA"] - clean["UA"]))
        assert rows[method]["RA_gap"] == pytest.approx(abs(runs[key]["RA"] - clean["RA"]))
    plain = {row["method"]: row for row in collect.summarise(loaded) if row["method"] == "FT"}
    inherited = runs["inherited", "retrain"]
    assert plain["FT"]["UA_gap"] == pytest.approx(abs(runs["inherited", "FT"]["UA"] - inherited["UA"]))
    assert np.isfinite(rows["FT"]["avg_gap"])
    both = {row["method"]: row for row in references.two_references(loaded)}
    assert set(both) == {"retrain", "FT"} and both["retrain"]["name"] == "Retrain (inherited mask)"
    for method in both:
        run = runs["inherited", method]
        for short, key, _ in collect.METRICS:  # signed, one trial: no interval
            assert both[method][f"{short}_minus_clean_mean"] == pytest.approx(run[key] - clean[key])
            assert both[method][f"{short}_minus_clean_ci_low"] is None
        to_clean = np.mean([abs(run[key] - clean[key]) for _, key, _ in collect.METRICS])
        to_own = np.mean([abs(run[key] - inherited[key]) for _, key, _ in collect.METRICS])
        assert both[method]["gap_clean"]["mean"] == pytest.approx(to_clean)
        assert both[method]["gap_inherited"]["mean"] == pytest.approx(to_own)
        assert both[method]["gap_change"]["mean"] == pytest.approx(to_clean - to_own)
    assert both["retrain"]["gap_inherited"]["mean"] == 0.0
    result = report.main([str(tmp_path), "--reference", "clean", "--out", str(tmp_path / "r"), "--no-output-metrics"])
    assert "## Against both references, paired by trial" in result["text"]
    assert len((tmp_path / "r" / "two_references.csv").read_text().splitlines()) == 3
    measured = report.main([str(tmp_path), "--reference", "clean", "--out", str(tmp_path / "m")])
    assert measured["problems"] == []  # the renamed inherited Retrain's checkpoint is found under its own name
    distances = {row["method"]: row for row in measured["rows"]}
    assert distances[collect.INHERITED_RETRAIN]["paired_seeds"] == 1
    assert distances[collect.INHERITED_RETRAIN]["JS_forget_mean"] > 0 and distances["retrain"]["JS_forget_mean"] == 0
    plain = report.main([str(tmp_path), "--out", str(tmp_path / "p"), "--no-output-metrics"])
    assert "both references" not in plain["text"] and not (tmp_path / "p" / "two_references.csv").exists()


def test_a_clean_mask_is_refused_for_another_forget_set(masks, tmp_path):
    out, _ = masks
    mask = str(out / "clean" / "1model_SA_best.pth.tar")
    flags = [*ARCH, "--unlearn", "FT", "--unlearn_epochs", "1", "--mask", mask, "--save_dir", str(tmp_path)]
    with pytest.raises(UsageError, match="was trained with another forget set left out"):
        main_forget.main([*flags, *FORGET, "--seed", "2"])  # seed 2 draws another 60 samples


def write_mask(path, layers: dict) -> None:
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"{name}.weight_mask": torch.tensor(kept) for name, kept in layers.items()}}, path)


def test_mask_overlap_compares_each_inherited_mask_with_its_clean_one_and_with_another_seed(tmp_path, capsys):
    import mask_overlap

    inherited = {1: {"a": [1.0, 1.0, 0.0, 0.0], "b": [1.0, 0.0]}, 2: {"a": [0.0, 1.0, 1.0, 0.0], "b": [1.0, 0.0]}}
    clean = {1: {"a": [1.0, 0.0, 1.0, 0.0], "b": [0.0, 1.0]}, 2: {"a": [0.0, 1.0, 1.0, 0.0], "b": [1.0, 0.0]}}
    for k in (1, 2):
        write_mask(tmp_path / "fm" / "prune_r0.95" / f"train_seed{k}" / "1model_SA_best.pth.tar", inherited[k])
        write_mask(tmp_path / "clean" / f"train_seed{k}" / "1model_SA_best.pth.tar", clean[k])
    argv = [str(tmp_path / "fm"), str(tmp_path / "clean"), "--trials", "2", "--out", str(tmp_path / "o.csv")]
    rows = mask_overlap.main(argv)
    whole = {(row["pair"], row["trial"]): row for row in rows if row["layer"] == "all"}
    assert whole["clean", 1]["shared"] == 1 and whole["clean", 1]["overlap"] == pytest.approx(1 / 3)
    assert whole["clean", 2]["overlap"] == 1.0
    assert whole["other_seed", 1]["other_trial"] == 2 and whole["other_seed", 1]["shared"] == 2  # a[1], b[0]
    assert whole["other_seed", 2]["other_trial"] == 1
    assert mask_overlap.random_overlap(rows) == pytest.approx((2 * 2 / 4 + 1 * 1 / 2) / 3)
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 1 + 4 * 3  # 4 comparisons x (2 layers + all)
    assert "trial 1, inherited vs clean, same trial (1): 1 of 3 kept weights shared (33.3%)" in capsys.readouterr().out
    (tmp_path / "clean" / "train_seed2" / "1model_SA_best.pth.tar").unlink()
    with pytest.raises(UsageError, match="finish its training run first"):
        mask_overlap.main(argv)
