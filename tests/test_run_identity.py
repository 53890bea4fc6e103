"""A run's identity: nothing is resumed, reused, skipped or averaged unless it is the same experiment.

One test per way the numbers could be silently wrong before run identities existed, plus a property
test over the declaration itself: every flag that defines an unlearning run (methods' own included)
makes a resume refuse and report.py split the rows when it changes.
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ARCH, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import main_backdoor
import main_forget
import main_imp
import main_synflow
import unlearn
import utils

sys.path.insert(0, str(ROOT / "scripts"))
import sweep  # noqa: E402

from experiments import arg_parser, run_identity, training_files, unlearning_files
from reporting import collect

OMP = [*ARCH, "--epochs", "1", "--pruning_times", "2", "--rate", "0.5"]


def refused(main, argv, capsys, *words):
    """The command exits 2 with one line holding every one of ``words``."""
    with pytest.raises(SystemExit) as exit_info:
        utils.run_cli(main, argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1, err
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def files_of(folder):
    return {path.name: path.read_bytes() for path in sorted(Path(folder).rglob("*")) if path.is_file()}


def forget(omp_dir, save_dir, *extra):
    argv = [*ARCH, "--mask", str(omp_dir / "1model_SA_best.pth.tar"), "--unlearn_epochs", "1", "--save_dir"]
    return [*argv, str(save_dir), *extra]


class Interrupt(Exception):
    """Stands for a SIGKILL at a chosen point of a run."""


# ----------------------------------------------------------------------------- 1. finished means finished


def test_a_mask_of_an_unfinished_round_is_neither_finished_for_the_sweep_nor_accepted(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "prune"
    argv = [*OMP, "--save_dir", str(run_dir)]
    marked = training_files.mark_round_finished

    def killed_before_round_1_ends(save_dir, k):
        if k == 1:
            raise Interrupt
        marked(save_dir, k)

    monkeypatch.setattr(training_files, "mark_round_finished", killed_before_round_1_ends)
    with pytest.raises(Interrupt):
        main_imp.main(argv)
    monkeypatch.undo()
    # what the old check saw as finished: round 1's best checkpoint and a results file both exist
    assert (run_dir / "1model_SA_best.pth.tar").is_file() and (run_dir / "imp_results.json").is_file()
    assert json.loads((run_dir / "imp_results.json").read_text())["finished"] is False

    prune = sweep.Run("prune", [sys.executable, "-u", "main_imp.py", *argv], run_dir)
    assert not prune.finished(tmp_path) and sweep.run_state(prune, tmp_path) != "finished"
    refused(main_forget.main, forget(run_dir, tmp_path / "ft", "--unlearn", "FT"), capsys, "round 1", "--resume")
    assert not (tmp_path / "ft").exists()

    main_imp.main([*argv, "--resume"])  # finishing the round makes the mask usable and the run finished
    assert prune.finished(tmp_path)
    assert torch.load(run_dir / "1model_SA_best.pth.tar", weights_only=True)["round_finished"] is True
    main_forget.main(forget(run_dir, tmp_path / "ft", "--unlearn", "FT"))


def test_the_sweep_lists_a_folder_of_another_experiment_as_conflicting(omp_dir, tmp_path):
    run_dir = tmp_path / "ft"
    main_forget.main(forget(omp_dir, run_dir, "--unlearn", "FT"))
    command = [sys.executable, "-u", "main_forget.py", *forget(omp_dir, run_dir, "--unlearn", "FT")]
    assert sweep.Run("unlearn", command, run_dir, lock="FT").finished(tmp_path)
    other = sweep.Run("unlearn", [*command, "--unlearn_lr", "0.5"], run_dir, lock="FT")
    state, why = other.record_state(tmp_path)
    assert (state, sweep.run_state(other, tmp_path)) == ("conflicting", "conflicting")
    assert "--unlearn_lr is 0.01 there, 0.5 here" in why


# ----------------------------------------------------------------------------- 2. report.py groups by identity


@pytest.fixture(scope="module")
def ssd_runs(omp_dir, tmp_path_factory):
    """Two SSD runs with other --ssd_alpha (seeds 1, 2) and two FT runs of seed 1 with other --unlearn_lr."""
    root = tmp_path_factory.mktemp("grid")
    for seed, alpha in ((1, "10"), (2, "0.5")):
        main_forget.main(
            forget(omp_dir, root / f"ssd{seed}", "--unlearn", "SSD", "--ssd_alpha", alpha, "--seed", str(seed))
        )
    for lr in ("0.01", "0.02"):
        main_forget.main(forget(omp_dir, root / f"ft{lr}", "--unlearn", "FT", "--unlearn_lr", lr, "--seed", "1"))
    main_forget.main(forget(omp_dir, root / "retrain", "--unlearn", "retrain", "--seed", "1"))
    return root


def test_report_keeps_runs_of_other_settings_apart_and_names_the_difference(ssd_runs):
    runs, problems = collect.load_runs([ssd_runs])
    rows = {row["name"]: row for row in collect.summarise(runs)}
    assert {"SSD (ssd_alpha=10)", "SSD (ssd_alpha=0.5)", "FT (unlearn_lr=0.01)", "FT (unlearn_lr=0.02)"} <= set(rows)
    assert all(rows[name]["n_seeds"] == 1 for name in rows)
    assert not problems  # nothing is a duplicate: same seed, other experiment
    ssd = [json.loads(next((ssd_runs / f"ssd{seed}").glob("*_eval.json")).read_text()) for seed in (1, 2)]
    assert (
        rows["SSD (ssd_alpha=10)"]["UA_mean"] == ssd[0]["UA"] and rows["SSD (ssd_alpha=0.5)"]["UA_mean"] == ssd[1]["UA"]
    )
    assert rows["SSD (ssd_alpha=10)"]["has_retrain"] and rows["FT (unlearn_lr=0.02)"]["has_retrain"]


def test_report_keeps_runs_from_masks_of_other_training_recipes_apart(ssd_runs, tmp_path):
    for name, lr in (("a", 0.1), ("b", 0.05)):
        record = json.loads((ssd_runs / "ft0.01" / "FT_eval.json").read_text())
        record["identity"]["inputs"]["mask"]["made_by"]["args"]["lr"] = lr
        record["identity"]["inputs"]["mask"]["sha256"] = name * 64
        record["seed"] = record["identity"]["args"]["seed"] = {"a": 1, "b": 2}[name]
        (tmp_path / name).mkdir()
        (tmp_path / name / "FT_eval.json").write_text(json.dumps(record))
    rows = collect.summarise(collect.load_runs([tmp_path])[0])
    assert sorted(row["name"] for row in rows) == ["FT (mask lr=0.05)", "FT (mask lr=0.1)"]


def test_report_averages_trials_whose_masks_come_from_one_recipe_with_other_seeds(ssd_runs, tmp_path):
    for seed in (1, 2):
        record = json.loads((ssd_runs / "ft0.01" / "FT_eval.json").read_text())
        record["identity"]["inputs"]["mask"]["made_by"]["args"]["seed"] = seed  # trial k trains its own mask
        record["identity"]["inputs"]["mask"]["sha256"] = str(seed) * 64
        record["UA"] = 10.0 * seed
        (tmp_path / str(seed)).mkdir()
        (tmp_path / str(seed) / "FT_eval.json").write_text(json.dumps(record))
    runs, problems = collect.load_runs([tmp_path])
    (row,) = collect.summarise(runs)
    assert (row["name"], row["n_seeds"], row["UA_mean"]) == ("FT", 2, 15.0) and not problems


def test_report_lists_the_same_experiment_and_trial_twice_as_a_duplicate(ssd_runs, tmp_path):
    for name in ("a", "b"):
        shutil.copytree(ssd_runs / "ft0.01", tmp_path / name)
    runs, problems = collect.load_runs([tmp_path])
    assert len(runs) == 1 and len(problems) == 1 and "same experiment and trial" in problems[0]


# ----------------------------------------------------------------------------- 3. and 4. resume checks inputs


def test_resume_with_the_same_indices_as_another_scenario_is_refused(omp_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    main_forget.main(forget(omp_dir, run_dir, "--unlearn", "FT", "--class_to_replace", "0"))
    indices = json.loads((run_dir / "FT_eval.json").read_text())["forget_indices"]
    np.save(tmp_path / "same.npy", np.asarray(indices))
    before = files_of(run_dir)
    argv = forget(omp_dir, run_dir, "--unlearn", "FT", "--indexes_to_replace", str(tmp_path / "same.npy"), "--resume")
    refused(main_forget.main, argv, capsys, "the forget set (scenario)", '"class" there', '"indices" here')
    assert files_of(run_dir) == before


def test_resume_on_another_mask_behind_the_same_path_is_refused(omp_dir, tmp_path, capsys, monkeypatch):
    shutil.copy(omp_dir / "1model_SA_best.pth.tar", tmp_path / "mask.pth.tar")
    argv = [*ARCH, "--mask", str(tmp_path / "mask.pth.tar"), "--unlearn", "FT", "--unlearn_epochs", "2"]
    argv += ["--save_dir", str(tmp_path / "run")]
    save = unlearning_files.save_progress

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise Interrupt

    monkeypatch.setattr(unlearning_files, "save_progress", save_then_stop)
    with pytest.raises(Interrupt):
        main_forget.main(argv)
    monkeypatch.undo()
    assert (tmp_path / "run" / "FT_progress.pth.tar").is_file()
    shutil.copy(omp_dir / "0model_SA_best.pth.tar", tmp_path / "mask.pth.tar")  # the dense mask, same path
    before = files_of(tmp_path / "run")
    refused(main_forget.main, [*argv, "--resume"], capsys, "the mask file's content differs")
    assert files_of(tmp_path / "run") == before


def test_the_same_mask_by_a_relative_or_an_absolute_path_is_the_same_input(omp_dir, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    main_forget.main(forget(omp_dir, run_dir, "--unlearn", "GA"))
    monkeypatch.chdir(omp_dir)
    argv = [*ARCH, "--mask", "1model_SA_best.pth.tar", "--unlearn", "GA", "--unlearn_epochs", "1"]
    again = main_forget.main([*argv, "--save_dir", str(run_dir), "--resume"])
    assert again["UA"] == json.loads((run_dir / "GA_eval.json").read_text())["UA"]


# ----------------------------------------------------------------------------- 5. the kind of script


def test_main_imp_does_not_resume_a_main_synflow_run_nor_the_reverse(tmp_path, capsys, monkeypatch):
    argv = [*ARCH, "--epochs", "2", "--pruning_times", "1", "--rate", "0.5", "--save_dir", str(tmp_path / "syn")]
    monkeypatch.setattr(training_files, "mark_round_finished", lambda *a: (_ for _ in ()).throw(Interrupt))
    with pytest.raises(Interrupt):
        main_synflow.main(argv)
    monkeypatch.undo()
    before = files_of(tmp_path / "syn")
    refused(main_imp.main, [*argv, "--resume"], capsys, "main_synflow.py run, not a main_imp.py run")
    assert files_of(tmp_path / "syn") == before
    main_synflow.main([*argv, "--resume"])
    record = json.loads((tmp_path / "syn" / "imp_results.json").read_text())
    assert record["finished"] and record["identity"]["kind"] == "synflow"
    saved = torch.load(tmp_path / "syn" / "0model_SA_best.pth.tar", weights_only=True)
    assert saved["pruning"] == "synflow"

    main_imp.main([*argv[:-1], str(tmp_path / "imp")])
    refused(main_synflow.main, [*argv[:-1], str(tmp_path / "imp"), "--resume"], capsys, "main_imp.py run")


# ----------------------------------------------------------------------------- 6. backdoor cleanse

BACKDOOR = [*ARCH, "--epochs", "1", "--pruning_times", "1", "--lr", "0.05", "--trigger_value", "1"]
BACKDOOR += ["--trigger_size", "3", "--no-aug", "--num_indexes_to_replace", "40", "--unlearn", "FT"]
BACKDOOR += ["--unlearn_epochs", "1"]


def test_main_backdoor_resume_reuses_the_same_cleanse_and_refuses_a_changed_one(tmp_path, capsys):
    argv = [*BACKDOOR, "--save_dir", str(tmp_path / "bd")]
    first = main_backdoor.main(argv)
    before = files_of(tmp_path / "bd")
    refused(main_backdoor.main, [*argv, "--resume", "--unlearn_lr", "0.5"], capsys, "--unlearn_lr is 0.01 there")
    assert files_of(tmp_path / "bd") == before  # the finished cleanse is not overwritten
    again = main_backdoor.main([*argv, "--resume"])
    assert again["RTE_min"] == first["RTE_min"] and again["SA_after"] == first["SA_after"]
    assert files_of(tmp_path / "bd") == before  # reused, not recomputed


# ----------------------------------------------------------------------------- 7. masks are 0/1


@pytest.mark.parametrize("value", [0.5, 2.0, -1.0, float("nan")])
def test_a_mask_that_is_not_zero_or_one_is_refused_naming_the_tensor(omp_dir, tmp_path, capsys, value):
    words = ("holds NaN or infinite values",) if value != value else ("exactly 0 or 1",)
    saved = torch.load(omp_dir / "1model_SA_best.pth.tar", weights_only=True)
    key = next(k for k in saved["state_dict"] if k.endswith("weight_mask"))
    saved["state_dict"][key] = torch.full_like(saved["state_dict"][key], value)
    torch.save(saved, tmp_path / "bad.pth.tar")
    argv = [*ARCH, "--mask", str(tmp_path / "bad.pth.tar"), "--unlearn", "FT", "--save_dir", str(tmp_path / "run")]
    refused(main_forget.main, argv, capsys, f"'{key}'", *words)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- the declaration, as a property


def unlearning_flags() -> list[str]:
    return run_identity.defining_flags(run_identity.UNLEARNING) + [flag.name for flag in unlearn.method_flags()]


def test_every_method_flag_and_the_shared_ones_are_declared_to_define_unlearning_runs():
    declared = run_identity.defining_flags(run_identity.UNLEARNING)
    assert {"unlearn", "unlearn_lr", "unlearn_epochs", "alpha", "momentum", "weight_decay", "seed"} <= set(declared)
    assert not {"save_dir", "device", "resume", "mask", "no_progress", "data"} & set(declared)
    for method in unlearn.listed():
        flags = run_identity.defining_flags(run_identity.UNLEARNING, method.name)
        assert {flag.name for flag in method.flags} <= set(flags), method.name


def changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if value is None:
        return 7
    return f"{value},1"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_changing_any_defining_flag_refuses_resume_and_splits_the_report(ssd_runs, data):
    """For a method M and a flag that defines M's runs: a finished run of M refuses a resume with that
    flag changed, naming it, and report.py puts the two runs in separate rows (a seed: separate trials)."""
    method = data.draw(st.sampled_from([m.name for m in unlearn.listed()]), label="method")
    flags = [name for name in run_identity.defining_flags(run_identity.UNLEARNING, method) if name != "unlearn"]
    name = data.draw(st.sampled_from(flags), label="flag")
    saved = torch.load(ssd_runs / "ssd1" / "SSDcheckpoint.pth.tar", weights_only=True)
    inputs = saved["identity"]["inputs"]
    args = argparse.Namespace(**{**vars(arg_parser.full_parser().parse_args([])), **saved["args"], "unlearn": method})
    identity = run_identity.of_args(run_identity.UNLEARNING, args, **inputs)
    setattr(args, name, changed(getattr(args, name)))
    other = run_identity.of_args(run_identity.UNLEARNING, args, **inputs)
    record = json.loads((ssd_runs / "ssd1" / "SSD_eval.json").read_text())
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / f"{method}checkpoint.pth.tar"
        torch.save({**saved, "identity": identity}, checkpoint)
        assert unlearning_files.load_finished(checkpoint, identity)["identity"] == identity
        with pytest.raises(utils.UsageError, match=f"--{name} is"):
            unlearning_files.load_finished(checkpoint, other)
        for part, ident in (("a", identity), ("b", other)):
            (Path(folder) / part).mkdir()
            (Path(folder) / part / f"{method}_eval.json").write_text(
                json.dumps({**record, "identity": ident, "method": method})
            )
        runs, _ = collect.load_runs([folder])
    assert len(runs) == 2
    if name in run_identity.TRIAL_FLAGS:  # a seed: two trials of one experiment, averaged in one row
        assert len({collect.group_key(run) for run in runs}) == 1 and runs[0]["trial"] != runs[1]["trial"]
    else:
        assert len({collect.group_key(run) for run in runs}) == 2


def test_a_mask_file_in_the_original_codes_layout_loads_and_is_the_same_input(omp_dir, tmp_path, capsys):
    """The original code's ResNet has no ``net.`` level (``conv1.…``, ``layer1.…``, ``fc.…``), and DataParallel
    adds ``module.``: such a file is mapped on load; one in neither layout is refused, naming its layout."""
    saved = torch.load(omp_dir / "1model_SA_best.pth.tar", weights_only=True)
    original = {("module." + key.removeprefix("net.")): value for key, value in saved["state_dict"].items()}
    torch.save({"state_dict": original, "epoch": 3}, tmp_path / "original.pth.tar")  # as the original saves it
    ours = main_forget.main(forget(omp_dir, tmp_path / "a", "--unlearn", "GA"))
    argv = [*ARCH, "--mask", str(tmp_path / "original.pth.tar"), "--unlearn", "GA", "--unlearn_epochs", "1"]
    theirs = main_forget.main([*argv, "--save_dir", str(tmp_path / "b")])
    assert theirs["identity"]["inputs"]["mask"]["sha256"] == ours["identity"]["inputs"]["mask"]["sha256"]
    assert (theirs["UA"], theirs["RA"]) == (ours["UA"], ours["RA"])
    assert (
        training_files.mask_fingerprint(tmp_path / "original.pth.tar") == ours["identity"]["inputs"]["mask"]["sha256"]
    )
    foreign = {f"encoder.{key}": value for key, value in original.items()}
    torch.save({"state_dict": foreign}, tmp_path / "foreign.pth.tar")
    argv[argv.index("--mask") + 1] = str(tmp_path / "foreign.pth.tar")
    refused(main_forget.main, [*argv, "--save_dir", str(tmp_path / "c")], capsys, "under encoder", "original code's")


# What an FT run and a main_imp.py run recorded in their identities before later flags were added. A new
# defining flag must be declared added_later (arg_parser.add's, or a method Flag's), or every run made before
# it (the finished sweeps, studies and trials on disk) stops being the same experiment.
EARLIER_UNLEARNING = {
    "alpha", "arch", "batch_size", "class_to_replace", "dataset", "decreasing_lr", "imagenet_arch", "momentum",
    "neggrad_beta", "no_aug", "no_l1_epochs", "num_indexes_to_replace", "saliency_end", "saliency_ratio",
    "scrub_alpha", "scrub_forget_batch_size", "scrub_gamma", "scrub_msteps", "scrub_temperature", "seed",
    "split_seed", "ssd_alpha", "ssd_lambda", "train_seed", "train_subset", "unlearn", "unlearn_epochs", "unlearn_lr",
    "warmup", "weight_decay",
}  # fmt: skip
EARLIER_TRAINING = {
    "arch", "batch_size", "dataset", "decreasing_lr", "epochs", "imagenet_arch", "lr", "momentum", "no_aug",
    "prune_type", "pruning_times", "random_prune", "rate", "rewind_epoch", "seed", "split_seed", "train_subset",
    "warmup", "weight_decay",
}  # fmt: skip


def test_flags_added_later_leave_the_identities_of_earlier_runs_as_they_were():
    ft = main_forget.make_parser().parse_args(["--unlearn", "FT"])
    current = run_identity.of_args(run_identity.UNLEARNING, ft)
    # NegGrad+'s D_f batch size came later but is recorded (studies made since hold it): a run without it is
    # the same experiment, for a resume and for report.py's grouping alike
    assert set(current["args"]) == EARLIER_UNLEARNING | {"neggrad_forget_batch_size", "threads"}
    earlier = {**current, "args": {k: v for k, v in current["args"].items() if k in EARLIER_UNLEARNING}}
    assert run_identity.differences(earlier, current) == [] and run_identity.differences(current, earlier) == []
    assert run_identity.setting_of(earlier) == run_identity.setting_of(current)
    changed = {**current, "args": {**current["args"], "neggrad_forget_batch_size": 16}}
    assert run_identity.differences(earlier, changed) == [("--neggrad_forget_batch_size", None, 16)]
    assert run_identity.setting_of(earlier) != run_identity.setting_of(changed)
    trained = main_imp.make_parser().parse_args([])
    assert set(run_identity.of_args(run_identity.TRAINING, trained)["args"]) == EARLIER_TRAINING | {"threads"}
    # set away from its default, a later flag is recorded, and the run is another experiment
    pruned = main_forget.make_parser().parse_args(["--unlearn", "FT_prune_bi", "--rate", "0.5"])
    identity = run_identity.of_args(run_identity.UNLEARNING, pruned)
    assert identity["args"]["bi_rate"] == 0.5 and "bi_random_prune" not in identity["args"]
    at_default = run_identity.of_args(
        run_identity.UNLEARNING, main_forget.make_parser().parse_args(["--unlearn", "FT_prune_bi"])
    )
    assert run_identity.differences(at_default, identity) == [("--bi_rate", None, 0.5)]
    released = main_forget.make_parser().parse_args(["--indexes_to_replace", "3,4", "--index_numbering", "official"])
    assert run_identity.of_args(run_identity.UNLEARNING, released)["args"]["index_numbering"] == "official"


# ----------------------------------------------------------------------------- CPU threads


def test_the_thread_count_defines_a_run_and_a_resume_at_another_count_is_refused(omp_dir, tmp_path, capsys):
    """On the CPU the weights depend on how many threads compute them, so --threads is part of every run's
    identity: a run records it (and computes with it), a run made before it was recorded counts as 1 thread,
    a resume or a report never mixes two counts."""
    parsers = {run_identity.TRAINING: main_imp.make_parser(), run_identity.UNLEARNING: main_forget.make_parser()}
    for kind, parser in parsers.items():
        one, two = (run_identity.of_args(kind, parser.parse_args(["--threads", n])) for n in ("1", "2"))
        assert one["args"]["threads"] == 1 and run_identity.differences(one, two) == [("--threads", 1, 2)]
        earlier = {**one, "args": {k: v for k, v in one["args"].items() if k != "threads"}}
        assert run_identity.differences(earlier, one) == []
        assert run_identity.setting_of(earlier) == run_identity.setting_of(one)
        assert run_identity.differences(earlier, two) == [("--threads", None, 2)]
        assert run_identity.setting_of(one) != run_identity.setting_of(two)
    try:
        result = main_forget.main(forget(omp_dir, tmp_path / "ga", "--unlearn", "GA", "--threads", "2"))
        assert result["identity"]["args"]["threads"] == 2 and result["provenance"]["threads"] == 2
        argv = forget(omp_dir, tmp_path / "ga", "--unlearn", "GA", "--resume")
        refused(main_forget.main, argv, capsys, "--threads is 2 there, 1 here")
        refused(main_imp.main, [*OMP, "--save_dir", str(omp_dir), "--resume", "--threads", "3"], capsys, "--threads")
        refused(main_imp.main, [*OMP, "--save_dir", str(tmp_path / "t"), "--threads", "0"], capsys, "--threads 0")
    finally:
        torch.set_num_threads(1)
    assert not (tmp_path / "t").exists()
