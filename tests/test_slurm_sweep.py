"""scripts/sweep.py --slurm against a real (local, single-node) Slurm: `make test-slurm`.

A small digits sweep (rates 0 and 0.5, FT and GA, class-wise, seed 1, a few epochs) goes through
the pruning array and the unlearning array that waits for it; then the results, the runs' exit
statuses, --status, a resubmission (nothing to do) and a resubmission after deleting one result
(exactly one task). Then a per-example audit (main_audit.py --slurm, N = 2) goes through one array and
the same command without --slurm reuses every run. Skipped unless RUN_SLURM_TESTS=1, which
`make test-slurm` sets.
"""

import json
import os
import subprocess
import sys

import pytest
from conftest import ARCH, ROOT
from slurm_cluster import local_cluster, missing_requirements, wait_for_queue

if os.environ.get("RUN_SLURM_TESTS") != "1":
    pytest.skip("Slurm integration test: run it with `make test-slurm`", allow_module_level=True)
if missing_requirements():
    pytest.fail(f"cannot start a local Slurm: {missing_requirements()}", pytrace=False)

METHODS = ("FT", "GA")
CAPTURE = {"capture_output": True, "text": True, "timeout": 300}


def sweep(env, root, *extra):
    command = [sys.executable, "scripts/sweep.py", "--stage", "all", "--dataset", "digits", "--arch", "resnet20s"]
    command += ["--root", str(root), "--rates", "0,0.5", "--methods", ",".join(METHODS), "--scenarios", "class"]
    command += ["--seeds", "1", "--slurm-gpus", "0", "--python", sys.executable]
    command += ["--extra-prune-args", "--epochs 2 --rewind_epoch 1 --batch_size 128 --no-progress --device cpu"]
    command += ["--extra-unlearn-args", "--unlearn_epochs 1 --batch_size 128 --no-progress --device cpu", *extra]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def results(root):
    return sorted(root.glob("digits_resnet20s/unlearn/class/r*/*/seed1/*_eval.json"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with local_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_a_digits_sweep_runs_on_slurm_and_resubmits_only_what_is_missing(cluster, tmp_path):
    root = tmp_path / "sweep"
    first = sweep(cluster, root, "--slurm")
    assert "# submitted prune: job" in first and "# submitted unlearn: job" in first
    wait_for_queue(cluster)
    found = results(root)
    assert len(found) == 2 * len(METHODS), first
    for path in found:
        record = json.loads(path.read_text())
        assert record["dataset"] == "digits" and record["method"] in METHODS
        assert (path.parent / "log.txt").read_text().splitlines()[-1] == "=== exit 0"
    prune_log = root / "digits_resnet20s" / "prune_r0.5" / "log.txt"
    assert prune_log.read_text().splitlines()[-1] == "=== exit 0"

    status = sweep(cluster, root, "--status")
    assert "# prune: 1 finished, 0 conflicting, 0 running, 0 failed, 0 interrupted, 0 pending" in status
    assert "# unlearn: 4 finished, 0 conflicting, 0 running, 0 failed, 0 interrupted, 0 pending" in status

    again = sweep(cluster, root, "--slurm")
    assert "# prune: nothing to submit" in again and "# unlearn: nothing to submit" in again

    found[0].unlink()  # a lost result: the plain resubmission runs exactly that one again
    once_more = sweep(cluster, root, "--slurm")
    assert "# prune: nothing to submit" in once_more and "1 array tasks" in once_more
    wait_for_queue(cluster)
    assert len(results(root)) == 2 * len(METHODS)

    found[1].unlink()  # a failed run: --retry-failed submits it alone
    with open(found[1].parent / "log.txt", "a") as log:
        log.write(
            "=== 2026-01-01 00:00:00 slurm 1_1 on node python main_forget.py\nTraceback (most recent call last):\n"
        )
        log.write("=== exit 1\n")
    assert "0 running, 1 failed" in sweep(cluster, root, "--status")
    retried = sweep(cluster, root, "--slurm", "--retry-failed")
    assert "# prune: nothing to submit" in retried and "1 array tasks" in retried
    wait_for_queue(cluster)
    assert len(results(root)) == 2 * len(METHODS)
    assert "# unlearn: 4 finished" in sweep(cluster, root, "--status")

    report = subprocess.run(
        [sys.executable, "report.py", str(root), "--out", str(tmp_path / "report")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0 and "digits · resnet20s" in report.stdout, report.stdout + report.stderr


def test_an_audit_runs_its_retrain_and_method_runs_as_one_slurm_array(cluster, omp_dir, tmp_path):
    audit_dir = tmp_path / "audit"
    command = [sys.executable, "main_audit.py", "--mask", str(omp_dir / "1model_SA_best.pth.tar"), "--unlearn", "FT"]
    command += ["-N", "2", "--save_dir", str(audit_dir), "--run-args", " ".join(ARCH), "--class_to_replace", "3"]
    command += ["--method-args", "--unlearn_epochs 1", "--retrain-args", "--unlearn_epochs 1"]
    submitted = subprocess.run([*command, "--slurm", "--slurm-gpus", "0"], cwd=ROOT, env=cluster, **CAPTURE)
    assert submitted.returncode == 0 and "4 array tasks" in submitted.stdout, submitted.stdout + submitted.stderr
    wait_for_queue(cluster)
    logs = sorted(audit_dir.glob("*/seed*/log.txt"))
    assert len(logs) == 4 and all(log.read_text().splitlines()[-1] == "=== exit 0" for log in logs)

    audited = subprocess.run(command, cwd=ROOT, env=cluster, **CAPTURE)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "'reused': 4" in audited.stdout and "'ran': 0" in audited.stdout
    record = json.loads((audit_dir / "FT_audit.json").read_text())
    examples = len(record["forget_indices"])
    assert examples > 100 and len(record["method_vs_retrain"]["per_example"]["attack_accuracy"]) == examples
    again = subprocess.run([*command, "--slurm", "--slurm-gpus", "0"], cwd=ROOT, env=cluster, **CAPTURE)
    assert "nothing to submit" in again.stdout, again.stdout + again.stderr


def test_two_tuning_workers_share_one_study_on_slurm(cluster, omp_dir, tmp_path):
    mask = omp_dir / "1model_SA_best.pth.tar"
    forget = ["--class_to_replace", "-1", "--num_indexes_to_replace", "60", "--seed", "1"]
    retrain = [sys.executable, "main_forget.py", *ARCH, *forget, "--mask", str(mask), "--unlearn", "retrain"]
    made = subprocess.run(
        [*retrain, "--unlearn_epochs", "1", "--save_dir", str(tmp_path / "retrain")], cwd=ROOT, env=cluster, **CAPTURE
    )
    assert made.returncode == 0, made.stdout + made.stderr
    tune = [
        sys.executable,
        "main_tune.py",
        *ARCH,
        *forget,
        "--mask",
        str(mask),
        "--reference",
        str(tmp_path / "retrain"),
    ]
    tune += [
        "--unlearn",
        "FT",
        "--space",
        "unlearn_epochs=1:2",
        "--n-trials",
        "4",
        "--save_dir",
        str(tmp_path / "tune"),
    ]
    submitted = subprocess.run([*tune, "--slurm", "2", "--slurm-gpus", "0"], cwd=ROOT, env=cluster, **CAPTURE)
    assert submitted.returncode == 0 and "2 workers on study 'FT'" in submitted.stdout, (
        submitted.stdout + submitted.stderr
    )
    wait_for_queue(cluster)
    logs = sorted((tmp_path / "tune").glob("worker*/log.txt"))
    assert len(logs) == 2 and all(log.read_text().splitlines()[-1] == "=== exit 0" for log in logs)
    record = json.loads((tmp_path / "tune" / "best.json").read_text())
    assert record["finished_trials"] >= 4 and record["best"]["method_args"].startswith("--unlearn_lr ")
    ran = [
        line for log in logs for line in log.read_text().splitlines() if line.startswith("trial ") and ": --" in line
    ]
    assert len({line.split(":")[0] for line in ran}) == len(ran)  # no trial number ran twice
    assert len({line.split(": ", 1)[1] for line in ran}) == len(ran)  # nor one setting: each worker draws its own
    again = subprocess.run(tune, cwd=ROOT, env=cluster, **CAPTURE)  # the study is full: nothing to run
    assert again.returncode == 0 and "nothing to run" in again.stdout, again.stdout + again.stderr
