"""main_tune.py: the Optuna study on digits, its resumption, its refusals, and that it never reads the test split."""

import csv
import dataclasses
import json
import signal
import sqlite3

import optuna
import pytest
import torch
from conftest import ARCH

import main_forget
import main_tune
import unlearn
from experiments import arg_parser, tuning
from training import interrupts
from unlearn import Param
from utils import UsageError

FORGET = ["--class_to_replace", "-1", "--num_indexes_to_replace", "60", "--seed", "1"]


@pytest.fixture(scope="module")
def reference(omp_dir, tmp_path_factory):
    """The mask file (round 1 of the shared OMP run) and its Retrain run (one epoch)."""
    mask = omp_dir / "1model_SA_best.pth.tar"
    out = tmp_path_factory.mktemp("retrain")
    main_forget.main([*ARCH, *FORGET, "--mask", str(mask), "--unlearn", "retrain", "--unlearn_epochs", "1",
                      "--save_dir", str(out)])  # fmt: skip
    return mask, out


def tune(reference, save_dir, *extra, method="FT"):
    mask, retrain = reference
    argv = [*ARCH, *FORGET, "--mask", str(mask), "--reference", str(retrain), "--unlearn", method,
            "--space", "unlearn_epochs=1:2", "--n-startup-trials", "2", "--pruner-startup", "1",
            "--save_dir", str(save_dir), *extra]  # fmt: skip
    return main_tune.main(argv)


def finished(save_dir):
    with sqlite3.connect(save_dir / "study.db") as db:
        rows = db.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    return rows


def test_a_study_is_stored_resumed_after_a_stop_and_records_its_selection(reference, tmp_path, monkeypatch):
    no_pruning = ("--pruner-startup", "99")
    record = tune(reference, tmp_path / "s", "--n-trials", "3", *no_pruning)
    assert [state for _, state in finished(tmp_path / "s")] == ["COMPLETE"] * 3
    study = optuna.load_study(study_name="FT", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}")
    first = [(trial.params, trial.value) for trial in study.trials]
    real_fn, calls = unlearn.METHODS["FT"].fn, []

    def stopped_once(model, ctx):  # the 4th trial is stopped by a SIGTERM after its first batch
        calls.append(1)
        if len(calls) == 1:
            interrupts._requested.append(signal.SIGTERM)
        return real_fn(model, ctx)

    monkeypatch.setitem(unlearn.METHODS, "FT", dataclasses.replace(unlearn.METHODS["FT"], fn=stopped_once))
    with interrupts.graceful_stop(), pytest.raises(interrupts.Stopped):
        tune(reference, tmp_path / "s", "--n-trials", "5", *no_pruning)
    states = [state for _, state in finished(tmp_path / "s")]
    assert states == ["COMPLETE"] * 3 + ["FAIL", "WAITING"]  # the stopped trial is queued to run again
    record = tune(reference, tmp_path / "s", "--n-trials", "5", *no_pruning)
    study = optuna.load_study(study_name="FT", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}")
    complete = [trial for trial in study.trials if trial.state.name == "COMPLETE"]
    assert len(complete) == 5 and [(t.params, t.value) for t in study.trials[:3]] == first  # none repeated
    assert study.trials[4].params == study.trials[3].params  # the rerun of the stopped trial
    drawn = [json.dumps(trial.params, sort_keys=True) for trial in study.trials if trial.number != 4]
    assert len(set(drawn)) == len(drawn)  # a continued study draws new settings, not its first ones again
    best = min(complete, key=lambda trial: trial.value)
    saved = json.loads((tmp_path / "s" / "best.json").read_text())
    assert saved["best"]["params"] == best.params and saved["best"]["objective"] == pytest.approx(best.value)
    assert saved["best"]["method_args"] == tuning.flags_text(best.params) == record["best"]["method_args"]
    assert "--batch_size 128" in saved["fixed_args"] and "--unlearn_lr" not in saved["fixed_args"]
    rows = (tmp_path / "s" / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 and rows[0].startswith("trial,state,objective")


def test_the_objective_is_the_gap_to_retrain_on_validation_and_never_reads_the_test_split(
    reference, tmp_path, monkeypatch
):
    tune(reference, tmp_path / "a", "--n-trials", "2")
    import dataset

    real_load, seen = dataset.load_data, []

    def garbage_test(args, device="cpu"):
        data = real_load(args, device)
        data.test_images = torch.randint_like(data.test_images, 0, 256)  # garbage where the test set was
        data.test_labels = torch.randint_like(data.test_labels, 0, data.num_classes)
        return data

    monkeypatch.setattr(tuning.dataset, "load_data", garbage_test)
    real_measure = tuning.measure

    def checked(model, data, forget, runtime):
        seen.append(len(data.test_labels))
        return real_measure(model, data, forget, runtime)

    monkeypatch.setattr(tuning, "measure", checked)
    tune(reference, tmp_path / "b", "--n-trials", "2")
    a, b = (json.loads((tmp_path / name / "best.json").read_text()) for name in "ab")
    assert a["best"] == b["best"] and a["reference"] == b["reference"]  # the same selection, to the bit
    assert seen and set(seen) == {0}  # every evaluation saw an empty test split
    metrics = a["best"]["metrics"]
    assert set(metrics) == {"UA", "MIA_efficacy", "RA", "VA"}
    gap = sum(abs(metrics[name] - a["reference"][name]) for name in metrics) / 4
    assert a["best"]["objective"] == pytest.approx(gap)


def test_the_median_pruner_stops_trials_worse_than_earlier_ones_after_an_epoch(reference, tmp_path):
    tune(reference, tmp_path / "s", "--n-trials", "6")
    rows = list(csv.DictReader((tmp_path / "s" / "trials.csv").open()))
    pruned = [row for row in rows if row["state"] == "PRUNED"]
    assert pruned and all(row["pruned_after_epoch"] == "1" for row in pruned)  # objective: its value then
    assert rows[0]["state"] == "COMPLETE"  # the first trial has no earlier one to be compared with
    record = json.loads((tmp_path / "s" / "best.json").read_text())
    assert record["finished_trials"] == 6 and record["best"]["trial"] not in [int(row["trial"]) for row in pruned]


def test_another_setting_in_the_same_study_is_refused(reference, tmp_path):
    tune(reference, tmp_path / "s", "--n-trials", "1")
    with pytest.raises(UsageError, match=r"made for another setting \(space\[1\]\.high is 2.0 there, 3.0 here\)"):
        tune(reference, tmp_path / "s", "--n-trials", "2", "--space", "unlearn_epochs=1:3")
    with pytest.raises(UsageError, match="made for another setting"):
        tune(reference, tmp_path / "s", "--n-trials", "2", "--momentum", "0.5")


def test_a_reference_of_another_forget_set_is_refused(reference, tmp_path):
    mask, retrain = reference
    argv = [*ARCH, "--class_to_replace", "-1", "--num_indexes_to_replace", "61", "--seed", "1", "--mask", str(mask),
            "--reference", str(retrain), "--unlearn", "FT", "--save_dir", str(tmp_path)]  # fmt: skip
    with pytest.raises(UsageError, match="is not this setting's Retrain: the forget set differs"):
        main_tune.main(argv)


def test_search_spaces_and_presets_come_from_the_registry():
    parser = main_forget.make_parser()
    defaults = vars(parser.parse_args([]))
    for method in unlearn.listed():
        for param in method.search_space:
            assert param.name in defaults, (method.name, param.name)
            assert param.integer == isinstance(defaults[param.name], int), (method.name, param.name)
        if method.preset is not None:
            assert method.preset.source
            parser.parse_args(["--unlearn", method.name, *method.preset.tokens()])
    assert [p.name for p in unlearn.get_method("SalUn").search_space] == [
        "unlearn_lr",
        "unlearn_epochs",
        "saliency_ratio",
    ]
    args = parser.parse_args(["--unlearn", "FT"])
    space = tuning.search_space(unlearn.get_method("FT"), ["unlearn_lr=0.001:0.01", "unlearn_epochs=off"], args)
    assert space == (Param("unlearn_lr", 0.001, 0.01, log=True),)
    with pytest.raises(UsageError, match="has no search space in its registry entry"):
        tuning.search_space(unlearn.get_method("raw"), [], args)
    with pytest.raises(UsageError, match="LOW:HIGH must be two numbers"):
        tuning.search_space(unlearn.get_method("FT"), ["unlearn_lr=a:b"], args)
    with pytest.raises(ValueError, match="empty or not positive"):
        Param("unlearn_lr", 0.0, 1.0, log=True)


def test_the_preset_is_the_first_trial_when_it_lies_in_the_space():
    space = unlearn.get_method("SalUn").search_space
    assert tuning.preset_params(unlearn.get_method("SalUn"), space) == {
        "unlearn_lr": 0.013, "unlearn_epochs": 10, "saliency_ratio": 0.5}  # fmt: skip
    narrow = (Param("unlearn_epochs", 1, 2, integer=True),)
    assert tuning.preset_params(unlearn.get_method("FT"), narrow) is None  # its 10 epochs lie outside


def test_best_json_records_the_preset_trial_beside_the_selection(reference, tmp_path):
    record = tune(reference, tmp_path / "g", "--n-trials", "2", "--space", "unlearn_epochs=1:5", method="GA")
    study = optuna.load_study(study_name="GA", storage=f"sqlite:///{tmp_path / 'g' / 'study.db'}")
    saved = json.loads((tmp_path / "g" / "best.json").read_text())
    assert saved["preset"] == record["preset"] and saved["preset"]["trial"] == 0
    assert saved["preset"]["params"] == {"unlearn_lr": 0.0001, "unlearn_epochs": 5}
    assert saved["preset"]["objective"] == pytest.approx(study.trials[0].value)
    assert saved["best"]["objective"] <= saved["preset"]["objective"]  # the selection is never worse on trial 1
    assert "preset" not in tune(reference, tmp_path / "f", "--n-trials", "1")  # FT's 10 epochs lie outside 1:2


def test_preset_published_fills_the_flags_and_the_command_line_overrides_them():
    parser = main_forget.make_parser()
    args = arg_parser.parse_with_preset(
        parser, ["--unlearn", "NegGrad+", "--preset", "published", "--unlearn_lr", "0.5"]
    )
    assert (args.unlearn_lr, args.unlearn_epochs, args.momentum, args.weight_decay) == (0.5, 5, 0.0, 0.0)
    assert (args.batch_size, args.neggrad_forget_batch_size, args.neggrad_beta, args.no_aug) == (32, 16, 0.9999, True)
    args = arg_parser.parse_with_preset(parser, ["--unlearn", "wfisher", "--preset", "published", "--alpha", "3"])
    assert args.alpha == 3.0  # the source leaves alpha to tune: the given value stays
    assert arg_parser.parse_with_preset(parser, ["--unlearn", "wfisher", "--preset", "published"]).alpha == 0.2


def test_command_line_round_trips_through_the_parser():
    values = {"batch_size": 32, "no_aug": True, "unlearn_lr": 0.012345678901234567, "decreasing_lr": "3,5"}
    text = arg_parser.command_line(values)
    parsed = vars(main_forget.make_parser().parse_args(text.split()))
    assert {name: parsed[name] for name in values} == values


def test_a_journal_file_storage_holds_the_study_and_a_bad_url_is_one_line(reference, tmp_path):
    journal = tmp_path / "study.journal"
    record = tune(reference, tmp_path / "j", "--n-trials", "1", "--storage", f"journal:{journal}")
    assert journal.stat().st_size > 0 and not (tmp_path / "j" / "study.db").exists()
    assert record["storage"] == f"journal:{journal}" and record["finished_trials"] == 1
    with pytest.raises(UsageError, match="--storage 'nodb://x' cannot be opened"):
        tune(reference, tmp_path / "k", "--n-trials", "1", "--storage", "nodb://x")
