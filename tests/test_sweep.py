"""scripts/sweep.py: exact commands, resuming, the dense checkpoint, Slurm arrays and the GPU pool."""

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import run_files, run_identity, training_files
from reporting import collect

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("sweep", ROOT / "scripts" / "sweep.py")
sweep = importlib.util.module_from_spec(_spec)
sys.modules["sweep"] = sweep  # dataclasses look their module up here
_spec.loader.exec_module(sweep)


def dry_run(*flags):
    lines = []
    code = sweep.main(["--dry-run", "--python", "python", *flags], echo=lines.append)
    assert code == 0
    return lines


def forget(root, rate, method, seed, mask, scenario_args, method_args):
    save = f"{root}/cifar10_resnet18/unlearn/class/r{rate}/{method}/seed{seed}"
    return (
        f"python -u main_forget.py --data ./data --dataset cifar10 --arch resnet18 --mask {mask} --unlearn {method} "
        f"--seed {seed} --save_dir {save} {method_args} {scenario_args}"
    )


def test_dry_run_prints_the_readme_commands(tmp_path):
    root = tmp_path / "sw"
    lines = dry_run(
        "--root", str(root), "--rates", "0,0.5", "--methods", "retrain,FT", "--scenarios", "class", "--seeds", "1"
    )
    dense = f"{root}/cifar10_resnet18/prune_r0.5/0model_SA_best.pth.tar"
    sparse = f"{root}/cifar10_resnet18/prune_r0.5/1model_SA_best.pth.tar"
    retrain, ft = "--unlearn_epochs 160 --unlearn_lr 0.1", "--unlearn_lr 0.01 --unlearn_epochs 10"
    assert lines == [
        "# prune: 1 runs, 0 finished (skipped), 1 to run",
        "python -u main_imp.py --data ./data --dataset cifar10 --arch resnet18 --prune_type rewind_lt "
        f"--rewind_epoch 8 --save_dir {root}/cifar10_resnet18/prune_r0.5 --rate 0.5 --pruning_times 2",
        "# unlearn: 4 runs, 0 finished (skipped), 4 to run",
        forget(root, 0, "retrain", 1, dense, "--class_to_replace 0", retrain),
        forget(root, 0, "FT", 1, dense, "--class_to_replace 0", ft),
        forget(root, 0.5, "retrain", 1, sparse, "--class_to_replace 0", retrain),
        forget(root, 0.5, "FT", 1, sparse, "--class_to_replace 0", ft),
    ]


def test_method_and_scenario_arguments(tmp_path):
    lines = dry_run(
        "--root",
        str(tmp_path),
        "--stage",
        "unlearn",
        "--rates",
        "0.9",
        "--scenarios",
        "random",
        "--seeds",
        "2",
        "--methods",
        "GA,fisher_new,wfisher,FT_prune,RL",
        "--alpha-ff",
        "1e-7",
        "--alpha-iu",
        "5",
        "--method-args",
        "RL=--unlearn_lr 0.02",
        "--extra-unlearn-args",
        "--unlearn_epochs 1 --device cpu",
    )
    tails = [line.split("--save_dir ")[1].split(" ", 1)[1] for line in lines[1:]]
    random_args = "--class_to_replace -1 --num_indexes_to_replace 4500 --unlearn_epochs 1 --device cpu"
    assert tails == [
        f"--unlearn_lr 0.0001 --unlearn_epochs 5 {random_args}",
        f"--alpha 1e-7 {random_args}",
        f"--alpha 5 {random_args}",
        f"--alpha 5e-4 --unlearn_lr 0.01 --unlearn_epochs 10 {random_args}",
        f"--unlearn_lr 0.02 {random_args}",
    ]


@pytest.mark.parametrize(("dataset", "count"), [("cifar100", 4500), ("svhn", 6593), ("digits", 129)])
def test_random_count_defaults(tmp_path, dataset, count):
    lines = dry_run(
        "--root",
        str(tmp_path),
        "--stage",
        "unlearn",
        "--dataset",
        dataset,
        "--rates",
        "0.5",
        "--scenarios",
        "random",
        "--methods",
        "FT",
        "--seeds",
        "1",
    )
    assert lines[1].endswith(f"--class_to_replace -1 --num_indexes_to_replace {count}")


def planned(argv):
    args = sweep.build_parser().parse_args(argv)
    sweep.check_args(args)
    return sweep.plan(args)


def finish(run, cwd=ROOT):
    """Write the final record ``run``'s command would leave (its run identity as far as the command fixes it)."""

    folder = cwd / run.save_dir
    folder.mkdir(parents=True, exist_ok=True)
    identity = run_identity.expected_from_argv(run.argv, training_files.mask_fingerprint)
    if run.stage == "prune":
        (folder / "imp_results.json").write_text(json.dumps({"finished": True, "identity": identity}))
    else:
        (folder / f"{run.lock}_eval.json").write_text(json.dumps({"identity": identity}))


def test_finished_runs_are_skipped(tmp_path):
    grid = ["--root", str(tmp_path), "--rates", "0.5", "--methods", "FT", "--scenarios", "class", "--seeds", "1,2"]
    stages = planned(["--python", "python", *grid])
    finish(stages["prune"][0])
    finish(next(run for run in stages["unlearn"] if "seed2" in str(run.save_dir)))
    half = tmp_path / "cifar10_resnet18" / "unlearn" / "class" / "r0.5" / "FT" / "seed1"
    half.mkdir(parents=True)
    (half / "log.txt").write_text("crashed")  # a started but unfinished run is run again
    lines = dry_run(*grid)
    assert lines[0] == "# prune: 1 runs, 1 finished (skipped), 0 to run"
    assert lines[1].startswith("# finished, skipped: python -u main_imp.py")
    assert lines[2] == "# unlearn: 2 runs, 1 finished (skipped), 1 to run"
    assert "--seed 1 " in lines[3] and not lines[3].startswith("#")
    assert not lines[3].endswith("--resume")  # nothing resumable there: it starts over
    assert lines[4].startswith("# finished, skipped: ") and "--seed 2 " in lines[4]


def test_interrupted_runs_continue_with_resume(tmp_path):
    prune_dir = tmp_path / "cifar10_resnet18" / "prune_r0.5"
    prune_dir.mkdir(parents=True)
    (prune_dir / "0checkpoint.pth.tar").write_bytes(b"x")  # killed during round 0
    half = tmp_path / "cifar10_resnet18" / "unlearn" / "class" / "r0.5" / "FT" / "seed1"
    half.mkdir(parents=True)
    (half / "FT_progress.pth.tar").write_bytes(b"x")  # killed after an unlearning epoch
    lines = dry_run(
        "--root", str(tmp_path), "--rates", "0.5", "--methods", "FT,GA", "--scenarios", "class", "--seeds", "1"
    )
    commands = [line for line in lines if not line.startswith("#")]
    assert len(commands) == 3
    imp, ft, ga = commands
    assert "main_imp.py" in imp and imp.endswith(" --resume")
    assert "--unlearn FT" in ft and ft.endswith(" --resume")
    assert "--unlearn GA" in ga and "--resume" not in ga


def test_dense_rate_uses_round_zero_of_the_smallest_rate(tmp_path):
    lines = dry_run(
        "--root", str(tmp_path), "--rates", "0.9,0,0.75", "--methods", "FT", "--scenarios", "class", "--seeds", "1"
    )
    assert sum("main_imp.py" in line for line in lines) == 2  # no pruning run of its own for rate 0
    r0 = [line for line in lines if "/r0/FT/" in line]
    assert len(r0) == 1 and f"--mask {tmp_path}/cifar10_resnet18/prune_r0.75/0model_SA_best.pth.tar " in r0[0]


def test_only_dense_rate_trains_one_round(tmp_path):
    lines = dry_run("--root", str(tmp_path), "--rates", "0", "--methods", "FT", "--scenarios", "class", "--seeds", "1")
    assert lines[1].endswith(f"--save_dir {tmp_path}/cifar10_resnet18/prune_r0 --rate 0 --pruning_times 1")
    assert f"--mask {tmp_path}/cifar10_resnet18/prune_r0/0model_SA_best.pth.tar " in lines[3]


def test_bad_flags_name_the_choices(tmp_path):
    with pytest.raises(sweep.SweepError, match="choose from raw, retrain, FT"):
        sweep.main(["--dry-run", "--methods", "FF"], echo=lambda _: None)
    with pytest.raises(sweep.SweepError, match="choose from class, random"):
        sweep.main(["--dry-run", "--scenarios", "classwise"], echo=lambda _: None)
    with pytest.raises(sweep.SweepError, match="unknown --dataset 'mnist'; choose from .*fashionmnist"):
        sweep.main(["--dry-run", "--dataset", "mnist"], echo=lambda _: None)
    with pytest.raises(sweep.SweepError, match="fractions"):
        sweep.main(["--dry-run", "--rates", "0.5,95"], echo=lambda _: None)


def test_slurm_dry_run_writes_a_valid_job_array(tmp_path):
    lines = dry_run(
        "--root",
        str(tmp_path),
        "--slurm",
        "--rates",
        "0,0.5,0.9",
        "--methods",
        "retrain,FT,GA",
        "--scenarios",
        "class,random",
        "--seeds",
        "1,2",
        "--slurm-args",
        "--partition gpu",
        "--array-limit",
        "4",
    )
    n_unlearn = 3 * 3 * 2 * 2
    script = (tmp_path / "sweep_unlearn.sbatch").read_text()
    commands = (tmp_path / "sweep_unlearn.commands").read_text().splitlines()
    assert len(commands) == n_unlearn and commands == [line for line in lines if "main_forget.py" in line]
    assert f"#SBATCH --array=0-{n_unlearn - 1}%4\n" in script and "#SBATCH --gres=gpu:1\n" in script
    assert len((tmp_path / "sweep_prune.commands").read_text().splitlines()) == 2
    assert "#SBATCH --array=0-1%4\n" in (tmp_path / "sweep_prune.sbatch").read_text()
    for stage in ("prune", "unlearn"):
        subprocess.run(["bash", "-n", str(tmp_path / f"sweep_{stage}.sbatch")], check=True)
    assert f"# would run: sbatch --parsable --array=0-1%4 --partition gpu {tmp_path}/sweep_prune.sbatch" in lines
    assert (
        f"# would run: sbatch --parsable '--dependency=afterok:<prune job id>' --array=0-{n_unlearn - 1}%4 "
        f"--partition gpu {tmp_path}/sweep_unlearn.sbatch"
    ) in lines


def test_sbatch_script_runs_the_line_of_its_task(tmp_path):
    commands = tmp_path / "c.commands"
    commands.write_text("echo first\necho 'second task' > out.txt\n")
    script = tmp_path / "s.sbatch"
    script.write_text(
        sweep.sbatch_script("unlearn", 2, commands, tmp_path, None).replace(f"cd {sweep.REPO}", f"cd {tmp_path}")
    )
    env = dict(os.environ, SLURM_ARRAY_TASK_ID="1")
    subprocess.run(["bash", str(script)], check=True, env=env, capture_output=True)
    assert (tmp_path / "out.txt").read_text() == "second task\n"
    env["SLURM_ARRAY_TASK_ID"] = "2"
    assert subprocess.run(["bash", str(script)], env=env, capture_output=True).returncode == 1


def test_slurm_submission_chains_the_stages(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    fake = bin_dir / "sbatch"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho "4242;cluster"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    lines = []
    root = tmp_path / "sw"
    code = sweep.main(
        ["--root", str(root), "--slurm", "--rates", "0.5", "--methods", "FT", "--scenarios", "class", "--seeds", "1"],
        echo=lines.append,
    )
    assert code == 0
    prune_call, unlearn_call = calls.read_text().splitlines()
    assert prune_call == f"--parsable --array=0-0 {root}/sweep_prune.sbatch"
    assert unlearn_call == f"--parsable --dependency=afterok:4242 --array=0-0 {root}/sweep_unlearn.sbatch"
    assert "# submitted unlearn: job 4242, 1 array tasks" in lines


GPU_PROBE = """
import os, sys, time
gpu = os.environ["CUDA_VISIBLE_DEVICES"]
lock = os.path.join(sys.argv[1], "busy_gpu" + gpu)
fd = os.open(lock, os.O_CREAT | os.O_EXCL)  # fails if another run holds this GPU
time.sleep(0.2)
os.close(fd)
os.remove(lock)
print("gpu", gpu)
"""


def test_pool_runs_one_command_per_gpu(tmp_path):
    runs = [
        sweep.Run(
            "unlearn",
            [sys.executable, "-c", GPU_PROBE, str(tmp_path)],
            tmp_path / f"run{i}",
        )
        for i in range(6)
    ]
    sweep.run_pool(runs, ["0", "3"], cwd=tmp_path, echo=lambda _: None)
    assert [run.returncode for run in runs] == [0] * 6
    assert {run.gpu for run in runs} == {"0", "3"}
    for run in runs:
        log = (tmp_path / run.save_dir / "log.txt").read_text()
        assert log.splitlines()[-2:] == [f"gpu {run.gpu}", "=== exit 0"]


def test_pool_without_gpus_runs_in_order_and_reports_failures(tmp_path):
    order = tmp_path / "order.txt"
    code = "import sys; open(sys.argv[1], 'a').write(sys.argv[2]); sys.exit(int(sys.argv[2]) == 1)"
    runs = [sweep.Run("prune", [sys.executable, "-c", code, str(order), str(i)], Path(f"r{i}")) for i in range(3)]
    sweep.run_pool(runs, [], cwd=tmp_path, echo=lambda _: None)
    assert order.read_text() == "012"
    assert [run.returncode for run in runs] == [0, 1, 0] and {run.gpu for run in runs} == {None}
    missing = sweep.Run("unlearn", ["false"], Path("u"), needs=Path("no_mask.pth.tar"))
    sweep.run_pool([missing], [], cwd=tmp_path, echo=lambda _: None)
    assert missing.returncode is None and "no_mask.pth.tar does not exist" in missing.note


# Stands for python: writes each script's final record (with the run identity the command has) and masks.
FAKE_PYTHON = """#!{python}
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
import torch
from experiments import run_identity, training_files
args = sys.argv[1:]
save_dir = Path(args[args.index("--save_dir") + 1])
save_dir.mkdir(parents=True, exist_ok=True)
identity = run_identity.expected_from_argv(args, training_files.mask_fingerprint)
if args[1] == "main_imp.py":
    if args[args.index("--rate") + 1] == "0.9":
        sys.exit("pruning failed")
    for k in (0, 1):
        torch.save({{"state_dict": {{"net.w": torch.full((2,), float(k))}}}}, save_dir / f"{{k}}model_SA_best.pth.tar")
    (save_dir / "imp_results.json").write_text(json.dumps({{"finished": True, "identity": identity}}))
else:
    assert Path(args[args.index("--mask") + 1]).exists(), "mask missing"
    method = args[args.index("--unlearn") + 1]
    if method == "GA":
        sys.exit("GA diverged")
    (save_dir / f"{{method}}_eval.json").write_text(json.dumps({{"argv": args, "identity": identity}}))
print("fake run done")
"""


def test_local_sweep_resumes_and_reports_failures(tmp_path):
    fake = tmp_path / "fakepython"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable, root=str(ROOT)))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    flags = [
        "--python",
        str(fake),
        "--root",
        str(tmp_path / "sw"),
        "--rates",
        "0,0.5",
        "--methods",
        "FT,GA",
        "--scenarios",
        "class",
        "--seeds",
        "1",
        "--gpus",
        "0,1",
    ]
    lines = []
    assert sweep.main(flags, echo=lines.append) == 1
    assert "# done: 3 of 5 runs succeeded, 2 failed, 0 not started" in lines
    assert sum(line.startswith("# FAILED: ") for line in lines) == 2
    log = tmp_path / "sw" / "cifar10_resnet18" / "unlearn" / "class" / "r0" / "FT" / "seed1" / "log.txt"
    assert "fake run done" in log.read_text()
    lines = []
    assert sweep.main(flags, echo=lines.append) == 1
    assert "# unlearn: 4 runs, 2 finished (skipped), 2 to run" in lines
    assert "# done: 0 of 2 runs succeeded, 2 failed, 0 not started" in lines


def test_runs_whose_mask_is_missing_are_not_started(tmp_path):
    fake = tmp_path / "fakepython"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable, root=str(ROOT)))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    root = tmp_path / "sw"
    lines = []
    flags = ["--python", str(fake), "--root", str(root), "--rates", "0.5,0.9", "--methods", "FT", "--seeds", "1"]
    assert sweep.main(flags, echo=lines.append) == 1
    assert "# done: 3 of 6 runs succeeded, 1 failed, 2 not started" in lines
    mask = root / "cifar10_resnet18" / "prune_r0.9" / "1model_SA_best.pth.tar"
    assert f"# NOT STARTED: 2 runs need {mask}, which does not exist (did its prune run fail?)" in lines


# ----------------------------------------------------------------------------- --status and --retry-failed


def _unlearn_folder(root, method, seed):
    folder = root / "cifar10_resnet18" / "unlearn" / "class" / "r0.5" / method / f"seed{seed}"
    folder.mkdir(parents=True)
    return folder


def test_status_and_retry_failed_read_results_logs_and_locks(tmp_path):

    grid = ["--root", str(tmp_path), "--stage", "unlearn", "--rates", "0.5", "--scenarios", "class"]
    grid += ["--methods", "FT,GA", "--seeds", "1,2,3", "--python", "python"]
    finish(planned(grid)["unlearn"][0])  # FT seed 1
    failed = _unlearn_folder(tmp_path, "FT", 2)
    (failed / "log.txt").write_text(
        "=== 2026-01-01 gpu=None python ...\nTraceback (most recent call last):\n=== exit 1\n"
    )
    retried = _unlearn_folder(tmp_path, "FT", 3)  # failed once, then its retry was killed: interrupted
    (retried / "log.txt").write_text("=== a\n=== exit 1\n=== b\nFT epoch 0: loss 1.0\n")
    diverged = _unlearn_folder(tmp_path, "GA", 1)
    (diverged / "log.txt").write_text("=== a\nGA diverged\n=== exit 3\n")
    running = _unlearn_folder(tmp_path, "GA", 2)
    lines = []
    with run_files.run_lock(running, "GA"):
        assert sweep.main([*grid, "--status"], echo=lines.append) == 0
    assert lines[0] == "# unlearn: 1 finished, 0 conflicting, 1 running, 1 failed, 2 interrupted, 1 pending"
    states = {line.split()[1]: line.split()[0] for line in lines[1:]}
    assert states == {
        str(failed): "failed",
        str(retried): "interrupted",
        str(diverged): "interrupted",
        str(running): "running",
        str(tmp_path / "cifar10_resnet18/unlearn/class/r0.5/GA/seed3"): "pending",
    }
    retry_plan = []
    assert sweep.main([*grid, "--retry-failed", "--dry-run"], echo=retry_plan.append) == 0
    assert retry_plan[0] == "# unlearn: 1 runs, 0 finished (skipped), 1 to run"
    assert f"--save_dir {failed} " in retry_plan[1]


def test_slurm_tasks_log_into_the_run_folder_with_their_exit_status(tmp_path):
    commands, run_dir = tmp_path / "c.commands", tmp_path / "runs" / "one"
    commands.write_text("echo hello; exit 4\n")
    commands.with_suffix(".dirs").write_text(f"{run_dir}\n")
    script = tmp_path / "s.sbatch"
    text = sweep.sbatch_script("unlearn", 1, commands, tmp_path, None, gpus=0)
    assert "--gres" not in text and "#SBATCH --gres=gpu:2" in sweep.sbatch_script("x", 1, commands, tmp_path, None, 2)
    script.write_text(text.replace(f"cd {sweep.REPO}", f"cd {tmp_path}"))
    done = subprocess.run(["bash", str(script)], env=dict(os.environ, SLURM_ARRAY_TASK_ID="0"), capture_output=True)
    assert done.returncode == 4
    log = (run_dir / "log.txt").read_text().splitlines()
    assert log[0].startswith("=== ") and "echo hello" in log[0] and log[1:] == ["hello", "=== exit 4"]
    run = sweep.Run("unlearn", ["x"], run_dir, (run_dir / "FT_eval.json",), lock="FT")
    assert sweep.run_state(run, cwd=tmp_path) == "failed"


def test_trials_train_their_own_models_and_a_cross_pairs_every_seed(tmp_path):
    grid = ["--python", "python", "--root", str(tmp_path), "--rates", "0,0.95", "--methods", "FT", "--scenarios"]
    stages = planned([*grid, "class", "--trials", "2"])
    prunes = [run.argv[run.argv.index("--seed") + 1] for run in stages["prune"]]
    assert prunes == ["1", "2"]
    pairs = {(str(run.needs.parent.name), run.argv[run.argv.index("--seed") + 1]) for run in stages["unlearn"]}
    assert pairs == {("train_seed1", "1"), ("train_seed2", "2")} and len(stages["unlearn"]) == 4
    assert all(f"train_seed{seed}/seed{seed}" in str(run.save_dir) for run in stages["unlearn"] for seed in
               [run.argv[run.argv.index("--seed") + 1]])  # fmt: skip
    crossed = planned([*grid, "class", "--train-seeds", "5,6", "--seeds", "1,2,2"])["unlearn"]
    assert len(crossed) == 2 * 2 * 2  # two sparsities, two trained models, seeds 1 and 2 (2 given twice)
    with pytest.raises(sweep.SweepError, match="--trials K"):
        planned([*grid, "class", "--trials", "2", "--seeds", "1"])
    legacy = planned([*grid, "class", "--seeds", "1"])
    assert "train_seed" not in str(legacy["unlearn"][0].save_dir) and "--seed" not in legacy["prune"][0].argv
    held_out = planned([*grid, "class", "--trials", "2-4"])
    assert [run.argv[run.argv.index("--seed") + 1] for run in held_out["prune"]] == ["2", "3", "4"]
    with pytest.raises(SystemExit):
        planned([*grid, "class", "--trials", "4-x"])


def test_tuned_runs_take_the_selected_flags_per_scenario_rate_and_method(tmp_path):
    grid = ["--python", "python", "--root", str(tmp_path), "--rates", "0,0.95", "--methods", "retrain,FT"]
    grid += ["--scenarios", "random", "--seeds", "1", "--runs-name", "tuned", "--tuned", str(tmp_path / "t")]
    with pytest.raises(sweep.SweepError, match=r"--tuned: .*r0/FT/best.json holds no selected setting"):
        planned(grid)
    for rate, lr in (("0", "0.5"), ("0.95", "0.25")):
        folder = tmp_path / "t" / "random" / f"r{rate}" / "FT"
        folder.mkdir(parents=True)
        record = {
            "fixed_args": "--batch_size 32 --no-aug",
            "best": {"method_args": f"--unlearn_lr {lr} --unlearn_epochs 3"},
        }
        (folder / "best.json").write_text(json.dumps(record))
    runs = {(run.save_dir.parts[-3], run.save_dir.parts[-2]): run for run in planned(grid)["unlearn"]}
    ft = runs[("r0.95", "FT")].argv
    assert ft[ft.index("--unlearn_lr") + 1] == "0.25" and "--no-aug" in ft and ft[ft.index("--batch_size") + 1] == "32"
    assert runs[("r0", "FT")].argv[runs[("r0", "FT")].argv.index("--unlearn_lr") + 1] == "0.5"
    assert "--unlearn_epochs 160" in " ".join(runs[("r0", "retrain")].argv)  # Retrain keeps its preset
    assert all(run.save_dir.parts[-5] == "tuned" for run in runs.values())
    with pytest.raises(sweep.SweepError, match="--runs-name '../x' must be one folder name"):
        planned([*grid, "--runs-name", "../x"])


def test_two_trials_train_two_models_and_give_a_spread_to_a_deterministic_method(tmp_path):
    """IU is deterministic given θ_o: over two unlearning seeds of one model it had no spread; over two trials
    (each its own trained model) it has."""
    import torch

    import main_forget
    import main_imp

    root = tmp_path / "sw"
    flags = ["--dataset", "digits", "--arch", "resnet20s", "--trials", "2", "--rates", "0", "--methods", "wfisher"]
    flags += ["--scenarios", "class", "--root", str(root), "--alpha-iu", "1e-4"]
    flags += ["--extra-prune-args", "--epochs 2 --lr 0.05 --rewind_epoch 0 --batch_size 128 --no-progress --device cpu"]
    flags += ["--extra-unlearn-args", "--batch_size 128 --no-progress --device cpu"]
    stages = planned(flags)
    for run in stages["prune"] + stages["unlearn"]:  # the sweep's own commands, run in this process (faster)
        script = {"main_imp.py": main_imp, "main_forget.py": main_forget}[run.argv[2]]
        script.main([str(arg) for arg in run.argv[3:]])
    masks = [root / "digits_resnet20s" / "prune_r0" / f"train_seed{k}" / "0model_SA_best.pth.tar" for k in (1, 2)]
    first, second = (torch.load(path, weights_only=True)["state_dict"] for path in masks)
    assert not torch.equal(first["net.conv1.weight"], second["net.conv1.weight"])
    (row,) = collect.summarise(collect.load_runs([root])[0])
    assert row["n_seeds"] == 2 and row["TA_std"] > 0 and row["TA_ci_low"] < row["TA_mean"] < row["TA_ci_high"]
    lines = []
    assert sweep.main([*flags, "--status"], echo=lines.append) == 0
    assert lines == ["# prune: 2 finished, 0 conflicting, 0 running, 0 failed, 0 interrupted, 0 pending",
                     "# unlearn: 2 finished, 0 conflicting, 0 running, 0 failed, 0 interrupted, 0 pending"]  # fmt: skip


def test_the_grid_is_normalised_and_names_and_roots_are_checked(tmp_path, monkeypatch):
    lines = dry_run("--root", str(tmp_path), "--rates", "0.5,0.5000001", "--methods", "FT", "--scenarios", "class")
    assert lines[0] == "# prune: 1 runs, 0 finished (skipped), 1 to run"  # one folder, one rate
    assert sum("main_forget.py" in line for line in lines) == 3  # seeds 1, 2, 3 at rate 0.5 only
    assert (
        len(planned(["--root", str(tmp_path), "--seeds", "2,2", "--methods", "FT", "--rates", "0.5"])["unlearn"]) == 2
    )
    with pytest.raises(sweep.SweepError, match="unknown method '../../x'"):
        sweep.main(["--dry-run", "--methods", "FT", "--method-args", "../../x=--unlearn_lr 1"], echo=lambda _: None)
    with pytest.raises(sweep.SweepError, match="line break"):
        sweep.main(["--dry-run", "--root", "a\nb"], echo=lambda _: None)
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(sweep.SweepError, match="cannot be created"):
        sweep.main(["--root", str(blocked / "sw"), "--methods", "FT", "--rates", "0.5"], echo=lambda _: None)
    monkeypatch.setattr(sweep.os, "access", lambda path, mode: False)  # as a read-only folder is for a non-root user
    with pytest.raises(sweep.SweepError, match="is not writable"):
        sweep.main(["--root", str(tmp_path), "--methods", "FT", "--rates", "0.5"], echo=lambda _: None)


def test_a_run_stopped_by_sigterm_or_with_only_a_progress_file_is_interrupted(tmp_path):
    grid = ["--root", str(tmp_path), "--stage", "unlearn", "--rates", "0.5", "--scenarios", "class"]
    grid += ["--methods", "FT", "--seeds", "1,2", "--python", "python"]
    stopped, progressed = (_unlearn_folder(tmp_path, "FT", seed) for seed in (1, 2))
    (stopped / "log.txt").write_text(
        "=== a\nFT epoch 0: loss 1.0\nstopped by SIGTERM during FT epoch 1\n=== exit 143\n"
    )
    (progressed / "FT_progress.pth.tar").write_bytes(b"x")  # no log.txt: run by hand, then killed
    lines = []
    assert sweep.main([*grid, "--status"], echo=lines.append) == 0
    assert lines[0] == "# unlearn: 0 finished, 0 conflicting, 0 running, 0 failed, 2 interrupted, 0 pending"


def test_a_run_still_loading_its_data_holds_its_lock_and_shows_as_running(tmp_path, monkeypatch):
    """The sweep makes the run's folder first, so the run takes its lock before it loads the data."""
    import torch

    import dataset
    import main_forget

    grid = ["--root", str(tmp_path), "--stage", "unlearn", "--rates", "0", "--scenarios", "class"]
    grid += ["--methods", "FT", "--seeds", "1", "--python", "python", "--prune-seed", "2"]
    (run,) = planned(grid)["unlearn"]
    (tmp_path / run.save_dir).mkdir(parents=True)
    seen = []

    def loading(*_args, **_kwargs):  # the moment the data is being read
        seen.append(sweep.run_state(run, tmp_path))
        raise KeyboardInterrupt  # stands for the rest of the run

    monkeypatch.setattr(dataset, "load_data", loading)
    mask = Path(run.argv[run.argv.index("--mask") + 1])
    mask.parent.mkdir(parents=True)
    torch.save({"state_dict": {"net.w": torch.zeros(1)}}, mask)  # read before the data: any tensors will do
    with pytest.raises(KeyboardInterrupt):
        main_forget.main([str(arg) for arg in run.argv[3:]])
    assert seen == ["running"] and sweep.run_state(run, tmp_path) == "pending"  # released when it ended
