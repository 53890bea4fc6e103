"""Relearn time (evaluation/relearn.py, main_forget.py --relearn, report.py's table) on digits."""

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ARCH

import dataset
import main_forget
import report
import utils
from evaluation.relearn import RelearnSettings, relearn_time
from models import build_model
from training.runtime import Runtime
from training.trainer import accuracy

RUNTIME = Runtime(torch.device("cpu"), progress=False)


@pytest.fixture(scope="module")
def data(digits_raw):
    return dataset.build_data(digits_raw, split_seed=1, train_subset=400)


def fresh_model(data, seed=0):
    torch.manual_seed(seed)
    return build_model("resnet20s", data.num_classes, in_channels=1, mean=data.mean, std=data.std)


def test_the_count_is_the_first_step_at_the_target_written_out_and_the_model_is_untouched(data):
    model, forget = fresh_model(data), np.arange(0, 60)
    before = copy.deepcopy(model.state_dict())
    plain = copy.deepcopy(model)  # the loop written out: SGD steps on shuffled D_f batches, D_f accuracy after each
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.05, momentum=0.9)
    batches, curve = data.train_batches(forget, batch_size=16, augment=False, seed=3), []
    curve.append(accuracy(plain, data.eval_batches("train", forget), RUNTIME))
    for epoch in range(10):
        batches.set_epoch(epoch)
        for images, labels in batches:
            plain.train()
            optimizer.zero_grad()
            F.cross_entropy(plain(images), labels).backward()
            optimizer.step()
            curve.append(accuracy(plain, data.eval_batches("train", forget), RUNTIME))
    # the target: the best D_f accuracy of the first 30 steps (how high depends on the CPU's kernels), which
    # relearning on D_f must lift above the starting one
    target = max(curve[1:31])
    assert target > curve[0]
    settings = RelearnSettings(lr=0.05, batch_size=16, max_steps=30, seed=3)
    result = relearn_time(model, data, forget, RUNTIME, target=target, settings=settings)
    first = next(i for i, value in enumerate(curve) if value >= target)
    assert result["reached"] and result["steps"] == first > 0
    assert result["curve"] == pytest.approx(curve[: first + 1])
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_not_reached_within_the_budget_is_none_and_a_known_d_f_is_zero_steps(data):
    model, forget = fresh_model(data), np.arange(0, 60)
    never = relearn_time(model, data, forget, RUNTIME, 101.0, RelearnSettings(max_steps=3, samples=20))
    assert never["steps"] is None and not never["reached"] and len(never["curve"]) == 4 and never["relearned_on"] == 20
    already = relearn_time(model, data, forget, RUNTIME, 0.0, RelearnSettings())
    assert already["steps"] == 0 and already["curve"] == [already["accuracy_before"]]


def load_script():
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("relearn_script", ROOT / "scripts" / "relearn.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.fixture(scope="module")
def sweep(omp_dir, tmp_path_factory):
    """A sweep's layout with a finished Retrain and FT run, and scripts/relearn.py's measured copies of them."""
    script, root = load_script(), tmp_path_factory.mktemp("relearn")
    common = [*ARCH, "--mask", str(omp_dir / "1model_SA_best.pth.tar"), "--class_to_replace", "-1"]
    common += ["--num_indexes_to_replace", "40", "--unlearn_epochs", "1", "--seed", "1", "--train_seed", "1"]
    for method in ("retrain", "FT"):
        main_forget.main(
            [*common, "--unlearn", method, "--save_dir", str(script.run_folder(root, "random", "0.5", method, 1))]
        )
    source = script.run_folder(root, "random", "0.5", "FT", 1)
    before = {path.name: path.read_bytes() for path in source.iterdir()}
    script.main([str(root), str(root / "measured"), "--methods", "retrain", "FT", "--rates", "0.5", "--trials", "1",
                 "--", "--relearn_max_steps", "20"])  # fmt: skip
    return script, root, common, before


def test_the_relearn_script_measures_copies_with_main_forget_and_leaves_the_runs_alone(sweep, capsys):
    script, root, _, before = sweep
    source = script.run_folder(root, "random", "0.5", "FT", 1)
    measured = json.loads((script.run_folder(root / "measured", "random", "0.5", "FT", 1) / "FT_eval.json").read_text())
    original = json.loads((source / "FT_eval.json").read_text())
    assert measured["relearn"]["max_steps"] == 20 and original.get("relearn") is None
    assert measured["UA"] == original["UA"] and measured["identity"] == original["identity"]  # the same run, reused
    assert {path.name: path.read_bytes() for path in source.iterdir()} == before
    capsys.readouterr()
    script.main([str(root), str(root / "measured"), "--methods", "FT", "--rates", "0.5", "--trials", "1"])
    assert "done already" in capsys.readouterr().out


def test_main_forget_records_the_relearn_time_against_its_retrain_and_report_shows_it(sweep, tmp_path):
    script, root, _, _ = sweep
    measured = root / "measured"
    retrain = json.loads((script.run_folder(measured, "random", "0.5", "retrain", 1) / "retrain_eval.json").read_text())
    ft = json.loads((script.run_folder(measured, "random", "0.5", "FT", 1) / "FT_eval.json").read_text())
    base = retrain["accuracy"]["forget"]
    for record in (retrain, ft):
        relearn = record["relearn"]
        assert relearn["reference_accuracy"] == pytest.approx(base)
        assert relearn["target"] == pytest.approx(min(100.0, base + 5.0))
        assert relearn["accuracy_before"] == pytest.approx(record["accuracy"]["forget"])
        if relearn["reached"]:
            steps = relearn["steps"]
            assert relearn["curve"][steps] >= relearn["target"] > max([-1.0, *relearn["curve"][:steps]])
    report.main([str(measured), "--out", str(tmp_path / "report"), "--no-output-metrics"])
    assert "Relearn time" in (tmp_path / "report" / "report.md").read_text()
    header, *rows = (tmp_path / "report" / "report.csv").read_text().splitlines()
    column = header.split(",").index("relearn_measured")
    assert rows and all(line.split(",")[column] == "1" for line in rows)


def test_a_relearn_reference_of_another_forget_set_or_none_is_refused_in_one_line_before_unlearning(
    sweep, tmp_path, capsys
):
    script, root, common, _ = sweep
    reference = script.run_folder(root, "random", "0.5", "retrain", 1)
    for extra, words in (
        (["--relearn", "--relearn_reference", str(reference), "--seed", "7"], "the forget set differs"),
        (["--relearn"], "--relearn needs --relearn_reference"),
    ):
        with pytest.raises(SystemExit) as stop:
            utils.run_cli(main_forget.main, [*common, "--unlearn", "FT", *extra, "--save_dir", str(tmp_path / "x")])
        err = capsys.readouterr().err.strip()
        assert stop.value.code == 2 and len(err.splitlines()) == 1 and words in err, err
        assert not (tmp_path / "x" / "FTcheckpoint.pth.tar").exists()  # refused before any unlearning
