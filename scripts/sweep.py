"""Run the original README's pruning and unlearning commands as a sweep over sparsity rates, methods,
scenarios and seeds, locally (one run per GPU at a time) or as a Slurm job array.

Stages:
  prune    one OMP run of main_imp.py per rate r > 0 (--rate r --pruning_times 2, rewind_lt, rewind epoch 8)
           into {root}/{dataset}_{arch}/prune_r{r}; rate 0 (dense) reuses round 0 of the smallest rate's run
  unlearn  main_forget.py for every rate x scenario x method x seed into
           {root}/{dataset}_{arch}/unlearn/{scenario}/r{rate}/{method}/seed{seed}, with --mask
           prune_r{r}/1model_SA_best.pth.tar (rate 0: prune_r{smallest rate}/0model_SA_best.pth.tar)
  all      prune, then unlearn

A run whose final record is already there and names the same experiment ({method}_eval.json, or for
pruning imp_results.json marked finished, with the run identity this command would have) is skipped;
one whose folder holds another experiment is listed as "conflicting" and is not overwritten; one that
was interrupted is continued with --resume from its last epoch, so an interrupted sweep resumes where it
stopped. Commands run from the repository root; relative --root and --data are taken from there.
Local runs log to {save_dir}/log.txt.
With --slurm the pending runs of a stage go to {root}/sweep_{stage}.commands (one per line) and
{root}/sweep_{stage}.sbatch (a job array, task i runs line i+1, one GPU each), submitted with sbatch;
for --stage all the unlearn array waits for the prune array (--dependency=afterok).
--dry-run prints the plan (pending commands, finished ones as comments: the output is a shell script)
or, with --slurm, writes the two files and prints them and the sbatch call without submitting.

Method arguments come from each method's registry entry (unlearn/*.py: its published preset, from
its authors' code for CIFAR-10), with {alpha_ff}, {alpha_iu} and {alpha_l1} filled from --alpha-ff,
--alpha-iu and --alpha-l1; --extra-unlearn-args is appended last, so it overrides them;
--method-args 'NAME=ARGS' replaces a method's arguments or gives those of a method without a preset;
--tuned DIR takes each run's arguments from the setting main_tune.py selected for its scenario, rate
and method (DIR/{scenario}/r{rate}/{method}/best.json). They are listed below.
Scenario arguments: class: --class_to_replace {--forget-class} (the whole class);
random: --class_to_replace -1 --num_indexes_to_replace {--random-count} (10% of D by default).

Examples:
  python scripts/sweep.py --stage all --dataset cifar10 --arch resnet18 --data ./data --gpus 0,1,2,3
  python scripts/sweep.py --stage all --dataset digits --arch resnet20s --rates 0,0.5,0.9 --seeds 1,2 \\
      --extra-prune-args "--epochs 5 --rewind_epoch 1" --extra-unlearn-args "--unlearn_epochs 2" --dry-run
  python scripts/sweep.py --stage all --dataset cifar10 --arch resnet18 --slurm --slurm-args "--time 24:00:00"
"""

from __future__ import annotations

import argparse
import fcntl
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dataset  # noqa: E402  (the dataset registry: each dataset's random-forgetting count)
import unlearn  # noqa: E402  (the method registry: each method's sweep arguments)
from experiments import arg_parser, run_files, run_identity, training_files, unlearning_files  # noqa: E402
from experiments.slurm import EXIT_MARK, sbatch_script  # noqa: E402  (the array script the audit shares)
from utils import UsageError, atomic_write_text  # noqa: E402

SCENARIO_ARGS = {
    "class": lambda a: ["--class_to_replace", str(a.forget_class)],
    "random": lambda a: ["--class_to_replace", "-1", "--num_indexes_to_replace", str(a.random_count)],
}


# Exit statuses of the scripts: 3 = the run diverged, its results are written (marked so), the report lists it.
STATUS = {0: "ok", 3: "DIVERGED (results written, listed by the report)", None: "NOT STARTED"}
FINISHED_STATUSES = (0, 3)


class SweepError(ValueError):
    """Bad flags: printed as one line, exit status 2."""


@dataclass
class Run:
    stage: str
    argv: list[str]
    save_dir: Path
    needs: Path | None = None  # checkpoint that must exist before the run can start
    lock: str = "imp"  # the run holds {save_dir}/.{lock}.lock while it runs
    # filled in by the local executor
    gpu: str | None = field(default=None, compare=False)
    returncode: int | None = field(default=None, compare=False)  # None: not started
    note: str = field(default="", compare=False)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def resume_files(self) -> list[str]:
        """What an interrupted run of this stage leaves for --resume."""
        if self.stage == "prune":
            return ["[0-9]*checkpoint.pth.tar"]
        return [f"{self.lock}checkpoint.pth.tar", f"{self.lock}_progress.pth.tar"]

    def finished(self, cwd: Path = REPO) -> bool:
        return self.record_state(cwd)[0] == "finished"

    def record_state(self, cwd: Path = REPO) -> tuple[str | None, str]:
        """("finished", "") when the folder's final record is this command's experiment; ("conflicting", why)
        when it records another one; (None, "") when there is no final record yet."""
        folder = cwd / self.save_dir
        try:
            if self.stage == "prune":
                saved = training_files.finished_training(folder)
            else:
                saved = unlearning_files.finished_unlearning(folder, self.lock)
            if saved is None:
                return None, ""
            expected = run_identity.expected_from_argv(
                self.argv, lambda path: training_files.mask_fingerprint(cwd / path)
            )
        except UsageError as err:
            return "conflicting", str(err)
        found = run_identity.differences(saved, expected, partial=True)
        return ("conflicting", run_identity.describe(found)) if found else ("finished", "")


# ----------------------------------------------------------------------------- the grid


def started(save_dir: Path, patterns) -> bool:
    """Whether an earlier, interrupted run left resumable files in ``save_dir``: then it continues with --resume."""
    folder = REPO / save_dir
    return any(any(folder.glob(pattern)) for pattern in patterns)


def rate_text(rate: float) -> str:
    return format(rate, "g")


def flags(**values) -> list[str]:
    """``flags(save_dir=p, rate=0.5)`` -> ``["--save_dir", "p", "--rate", "0.5"]``, in the order given."""
    return [item for name, value in values.items() for item in (f"--{name}", str(value))]


def sweep_dir(args) -> Path:
    return Path(args.root) / f"{args.dataset}_{args.arch}"


def prune_rates(rates: list[float]) -> list[float]:
    """Rates that need a pruning run: every positive one, or rate 0 alone when it is the only rate."""
    return [rate for rate in rates if rate > 0] or [0.0]


def train_seeds(args) -> list:
    """Seeds of the training-and-pruning runs; None stands for the one run of main_imp's (or --prune-seed's) seed."""
    return sorted({train for train, _ in args.trial_pairs}, key=lambda seed: (seed is None, seed or 0))


def prune_dir(args, rate: float, train_seed) -> Path:
    folder = sweep_dir(args) / f"prune_r{rate_text(rate)}"
    return folder if train_seed is None else folder / f"train_seed{train_seed}"


def mask_path(args, rate: float, train_seed=None) -> Path:
    """Round 1 of rate r's OMP run is the sparse model; round 0 of the smallest rate's run is the dense one."""
    pruned = prune_rates(args.rates)
    if rate > 0:
        return prune_dir(args, rate, train_seed) / "1model_SA_best.pth.tar"
    return prune_dir(args, min(pruned), train_seed) / "0model_SA_best.pth.tar"


def prune_runs(args) -> list[Run]:
    runs = []
    for train_seed in train_seeds(args):
        for rate in prune_rates(args.rates):
            runs.append(_prune_run(args, rate, train_seed))
    return runs


def _prune_run(args, rate: float, train_seed) -> Run:
    save_dir = prune_dir(args, rate, train_seed)
    argv = [args.python, "-u", "main_imp.py"] + flags(
        data=args.data,
        dataset=args.dataset,
        arch=args.arch,
        prune_type="rewind_lt",
        rewind_epoch=8,
        save_dir=save_dir,
        rate=rate_text(rate),
        pruning_times=2 if rate > 0 else 1,
    )
    seed = train_seed if train_seed is not None else args.prune_seed
    if seed is not None:
        argv += ["--seed", str(seed)]
    argv += shlex.split(args.extra_prune_args)
    run = Run("prune", argv, save_dir)
    if started(save_dir, run.resume_files):
        run.argv.append("--resume")
    return run


def unlearn_runs(args) -> list[Run]:
    runs = []
    for scenario in args.scenarios:
        for rate in args.rates:
            for method in args.methods:
                for train_seed, seed in args.trial_pairs:
                    runs.append(_unlearn_run(args, scenario, rate, method, train_seed, seed))
    return runs


def _unlearn_run(args, scenario: str, rate: float, method: str, train_seed, seed: int) -> Run:
    folder = sweep_dir(args) / args.runs_name / scenario / f"r{rate_text(rate)}" / method
    save_dir = (folder if train_seed is None else folder / f"train_seed{train_seed}") / f"seed{seed}"
    mask = mask_path(args, rate, train_seed)
    argv = [args.python, "-u", "main_forget.py"] + flags(
        data=args.data, dataset=args.dataset, arch=args.arch, mask=mask, unlearn=method, seed=seed, save_dir=save_dir
    )
    argv += (
        method_args(args, method, scenario, rate) + SCENARIO_ARGS[scenario](args) + shlex.split(args.extra_unlearn_args)
    )
    run = Run("unlearn", argv, save_dir, needs=mask, lock=method)
    if started(save_dir, run.resume_files):
        run.argv.append("--resume")
    return run


def sweep_methods() -> list[str]:
    """Methods whose registry entry gives sweep arguments, in listing order."""
    return [method.name for method in unlearn.listed() if method.preset is not None]


def method_args(args, method: str, scenario: str | None = None, rate: float | None = None) -> list[str]:
    if method in args.method_args:
        return shlex.split(args.method_args[method])
    if args.tuned is not None and method != "retrain":
        return tuned_args(args, scenario, rate, method)
    alphas = {"alpha_ff": args.alpha_ff, "alpha_iu": args.alpha_iu, "alpha_l1": args.alpha_l1}
    return unlearn.METHODS[method].preset.tokens(alphas)


def tuned_file(args, scenario: str, rate: float, method: str) -> Path:
    return Path(args.tuned) / scenario / f"r{rate_text(rate)}" / method / "best.json"


def tuned_args(args, scenario: str, rate: float, method: str) -> list[str]:
    """The flags main_tune.py selected for this scenario, rate and method: its fixed flags, then the chosen ones."""
    import json

    path = tuned_file(args, scenario, rate, method)
    try:
        record = json.loads(path.read_text())
        selected = record["best"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SweepError(
            f"--tuned: {path} holds no selected setting (run main_tune.py for {method} at rate {rate_text(rate)}, "
            f"{scenario} forgetting, until a trial finishes; or leave {method} out)"
        ) from None
    return shlex.split(record.get("fixed_args", "")) + shlex.split(selected["method_args"])


def method_listing() -> str:
    lines = [f"  {name:<11} {unlearn.METHODS[name].preset.args or '(none)'}" for name in sweep_methods()]
    return "\n\nMethod arguments (from the registry):\n" + "\n".join(lines)


def plan(args) -> dict[str, list[Run]]:
    stages = ("prune", "unlearn") if args.stage == "all" else (args.stage,)
    build = {"prune": prune_runs, "unlearn": unlearn_runs}
    return {stage: build[stage](args) for stage in stages}


# ----------------------------------------------------------------------------- the state of a run

STOPPED_BY_SIGNAL = ("130", "143", "-2", "-15")  # SIGINT, SIGTERM: the scripts exit 128 + n after saving


def run_state(run: Run, cwd: Path = REPO) -> str:
    """finished, conflicting (another experiment's result is there), running (its lock is held), failed (its
    log ends in a failure), interrupted or pending."""
    folder = cwd / run.save_dir
    recorded, _ = run.record_state(cwd)
    if recorded is not None:
        return recorded
    if _lock_held(folder / f".{run.lock}.lock"):
        return "running"
    log = folder / "log.txt"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    starts = [i for i, line in enumerate(lines) if line.startswith("=== ") and not line.startswith(EXIT_MARK)]
    attempt = lines[starts[-1] :] if starts else lines  # the last attempt only
    exits = [line[len(EXIT_MARK) :].strip() for line in attempt if line.startswith(EXIT_MARK)]
    resumable = ("0", "3", *STOPPED_BY_SIGNAL)  # a stop by signal saved its progress: --resume continues it
    if (exits and exits[-1] not in resumable) or (not exits and any("Traceback" in line for line in attempt)):
        return "failed"
    return "interrupted" if attempt or started(folder, run.resume_files) else "pending"


def _lock_held(path: Path) -> bool:
    """Whether a live process holds ``path``'s flock (a killed one's lock is released by the kernel)."""
    if not path.is_file():
        return False
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def print_status(stages: dict[str, list[Run]], echo=print) -> None:
    """Every run of the sweep by state: counts per stage, then each run that is not finished."""
    for stage, runs in stages.items():
        states = [(run, run_state(run)) for run in runs]
        counts = {state: sum(1 for _, s in states if s == state) for state in STATES}
        echo(f"# {stage}: " + ", ".join(f"{count} {state}" for state, count in counts.items()))
        for run, state in states:
            if state == "conflicting":
                echo(f"{state:<11} {run.save_dir}  (holds another experiment: {run.record_state()[1]})")
            elif state != "finished":
                echo(f"{state:<11} {run.save_dir}  (log: {run.save_dir / 'log.txt'})")


STATES = ("finished", "conflicting", "running", "failed", "interrupted", "pending")


# ----------------------------------------------------------------------------- local execution


def execute(run: Run, gpu: str | None, cwd: Path = REPO) -> Run:
    """Run one command with its output appended to {save_dir}/log.txt; CUDA_VISIBLE_DEVICES=gpu when given."""
    run.gpu = gpu
    if run.needs is not None and not (cwd / run.needs).exists():
        run.note = f"not started: {run.needs} does not exist (did its prune run fail?)"
        return run
    save_dir = cwd / run.save_dir
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        run.note = f"not started: its folder {save_dir} cannot be created ({err.strerror})"
        return run
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    start = time.time()
    with open(save_dir / "log.txt", "a") as log:
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} gpu={gpu} {run.command}\n")
        log.flush()
        run.returncode = subprocess.call(run.argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.write(f"{EXIT_MARK}{run.returncode}\n")
    run.note = f"{(time.time() - start) / 60:.1f} min, log {save_dir / 'log.txt'}"
    return run


def run_pool(runs: list[Run], gpus: list[str], cwd: Path = REPO, echo=print) -> list[Run]:
    """Run everything once: one worker per GPU, each taking the next run, so a GPU never holds two runs.

    With no GPUs, one worker runs them in order on the default device.
    """
    todo = queue.Queue()
    for run in runs:
        todo.put(run)
    lock, stop = threading.Lock(), threading.Event()

    def worker(gpu):
        while not stop.is_set():
            try:
                run = todo.get_nowait()
            except queue.Empty:
                return
            with lock:
                echo(f"[gpu {gpu if gpu is not None else '-'}] start {run.save_dir}")
            execute(run, gpu, cwd)
            status = STATUS.get(run.returncode, f"FAILED (exit {run.returncode})")
            with lock:
                echo(f"[gpu {gpu if gpu is not None else '-'}] {status} {run.save_dir} ({run.note})")

    threads = [threading.Thread(target=worker, args=(gpu,)) for gpu in (gpus or [None])]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:  # the running commands got the same Ctrl-C; start no new ones
        stop.set()
        echo("interrupted: waiting for the running commands to exit")
        for thread in threads:
            thread.join()
        raise
    return runs


# ----------------------------------------------------------------------------- Slurm


def write_slurm(stage: str, runs: list[Run], args) -> tuple[Path, list[str]]:
    """Write {root}/sweep_{stage}.commands and .sbatch for the pending runs; return the script and sbatch argv."""
    root = REPO / args.root
    root.mkdir(parents=True, exist_ok=True)
    commands_file, script_file = root / f"sweep_{stage}.commands", root / f"sweep_{stage}.sbatch"
    log_dir = root / "slurm_logs"
    log_dir.mkdir(exist_ok=True)
    atomic_write_text("".join(run.command + "\n" for run in runs), commands_file)
    atomic_write_text("".join(f"{run.save_dir}\n" for run in runs), commands_file.with_suffix(".dirs"))
    script = sbatch_script(stage, len(runs), commands_file, log_dir, args.array_limit, args.slurm_gpus)
    atomic_write_text(script, script_file)
    limit = f"%{args.array_limit}" if args.array_limit else ""
    sbatch = ["sbatch", "--parsable", f"--array=0-{len(runs) - 1}{limit}"] + shlex.split(args.slurm_args)
    return script_file, sbatch


def submit_slurm(stages: dict[str, list[Run]], args, echo=print) -> int:
    job_id = None
    for stage, runs in stages.items():
        if not runs:
            echo(f"# {stage}: nothing to submit")
            continue
        script_file, sbatch = write_slurm(stage, runs, args)
        if job_id is not None:
            sbatch.insert(2, f"--dependency=afterok:{job_id}")
        sbatch.append(str(script_file))
        echo(("# would run: " if args.dry_run else "# running: ") + shlex.join(sbatch))
        if args.dry_run:
            echo(script_file.read_text().rstrip())
            job_id = "<prune job id>" if stage == "prune" else None
            continue
        done = subprocess.run(sbatch, capture_output=True, text=True)
        if done.returncode != 0:
            echo(f"sbatch failed (exit {done.returncode}): {done.stderr.strip()}")
            return 1
        job_id = done.stdout.strip().split(";")[0]
        echo(f"# submitted {stage}: job {job_id}, {len(runs)} array tasks")
    return 0


# ----------------------------------------------------------------------------- the command


def _list(kind, flag):
    def parse(text):
        try:
            return [kind(item) for item in text.split(",") if item.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes comma-separated {kind.__name__}s, got '{text}'") from None

    return parse


def _trial_range(text: str) -> tuple[int, int]:
    """``K`` as trials 1..K, ``A-B`` as trials A..B."""
    first, sep, last = text.partition("-")
    try:
        return (int(first), int(last)) if sep else (1, int(first))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--trials takes K or A-B (whole numbers), got '{text}'") from None


def _float_text(text: str) -> str:
    """Keep a number as the user wrote it (e.g. 5e-4) so the printed commands read like the README."""
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__ + method_listing(), formatter_class=arg_parser.HelpFormatter)
    grid = p.add_argument_group("the grid")
    for add in (_add_grid_args, _add_seed_args, _add_place_args):
        add(grid)
    _add_run_args(p.add_argument_group("method and run arguments"))
    _add_where_args(p.add_argument_group("where and how it runs"))
    _add_action_args(p.add_argument_group("what it does"))
    return p


def _add_grid_args(grid: argparse._ArgumentGroup) -> None:
    grid.add_argument("--stage", choices=("prune", "unlearn", "all"), default="all", help="which runs to sweep")
    grid.add_argument(
        "--dataset", default="cifar10", help="passed as --dataset (cifar10, cifar100, svhn, TinyImagenet, digits)"
    )
    grid.add_argument("--arch", default="resnet18", help="passed as --arch")
    grid.add_argument("--data", default="./data", help="passed as --data (relative to the repository root)")
    grid.add_argument(
        "--rates",
        type=_list(float, "--rates"),
        default=[0.0, 0.5, 0.75, 0.9, 0.95, 0.99],
        help="pruning rates = target sparsities, comma-separated; 0 is the dense model",
    )
    grid.add_argument(
        "--methods",
        type=_list(str, "--methods"),
        default=[method.name for method in unlearn.listed() if method.in_tables],
        help="--unlearn methods (default: the six of the paper's tables)",
    )
    grid.add_argument(
        "--scenarios",
        type=_list(str, "--scenarios"),
        default=["class", "random"],
        help="forgetting scenarios: class (a whole class) and/or random (--random-count samples)",
    )


def _add_seed_args(grid: argparse._ArgumentGroup) -> None:
    grid.add_argument(
        "--seeds",
        type=_list(int, "--seeds"),
        default=None,
        help="unlearning seeds (seed s picks the random forget set with RandomState(s-1)); default 1,2,3, "
        "all unlearning one trained model per sparsity (use --trials for independent trials)",
    )
    grid.add_argument(
        "--trials",
        type=_trial_range,
        default=None,
        help="K independent trials: trial k trains and prunes with --seed k and unlearns that model with --seed k "
        "(runs under .../train_seed{k}/...); A-B for trials A to B (e.g. 2-4: the trials held out from tuning)",
    )
    grid.add_argument(
        "--train-seeds",
        type=_list(int, "--train-seeds"),
        default=None,
        help="seeds of the training and pruning runs; every one is unlearned with every --seeds seed (a full cross)",
    )


def _add_place_args(grid: argparse._ArgumentGroup) -> None:
    grid.add_argument("--root", default="runs/sweep", help="where runs go: {root}/{dataset}_{arch}/...")
    grid.add_argument(
        "--runs-name",
        default="unlearn",
        help="folder of the unlearning runs under {root}/{dataset}_{arch} (e.g. tuned, beside the default unlearn)",
    )
    grid.add_argument("--prune-seed", type=int, default=None, help="--seed for the pruning runs (default: main_imp's)")
    grid.add_argument("--forget-class", type=int, default=0, help="class forgotten in the class scenario")
    grid.add_argument(
        "--random-count",
        type=int,
        default=None,
        help="samples forgotten in the random scenario (default: the dataset's registered count, 10%% of D: "
        + ", ".join(f"{entry.name} {entry.random_count}" for entry in dataset.DATASETS.values())
        + ")",
    )


def _add_run_args(extra: argparse._ArgumentGroup) -> None:
    extra.add_argument("--alpha-ff", type=_float_text, default="1e-8", help="--alpha of fisher_new (FF); tune it")
    extra.add_argument("--alpha-iu", type=_float_text, default="10", help="--alpha of wfisher (IU); tune it in [1, 20]")
    extra.add_argument(
        "--alpha-l1", type=_float_text, default="5e-4", help="--alpha (l1 weight) of FT_prune/FT_l1/GA_l1"
    )
    extra.add_argument(
        "--method-args",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="arguments for a method, replacing its defaults (repeatable), e.g. 'RL=--unlearn_lr 0.01'",
    )
    extra.add_argument(
        "--tuned",
        default=None,
        metavar="DIR",
        help="take each method's arguments (but Retrain's) from main_tune.py's selection, "
        "DIR/{scenario}/r{rate}/{method}/best.json",
    )
    extra.add_argument(
        "--extra-prune-args",
        default="",
        help="string appended to every main_imp.py command; write --extra-prune-args='--no-aug' when it is one flag",
    )
    extra.add_argument(
        "--extra-unlearn-args",
        default="",
        help="string appended to every main_forget.py command, overriding the method defaults; "
        "write --extra-unlearn-args='--no-aug' when it is one flag",
    )


def _add_where_args(how: argparse._ArgumentGroup) -> None:
    how.add_argument(
        "--gpus",
        type=_list(str, "--gpus"),
        default=[],
        help="local mode: GPU ids, one run per GPU at a time (CUDA_VISIBLE_DEVICES); none: one run at a "
        "time on the default device",
    )
    how.add_argument("--slurm", action="store_true", help="submit each stage as an sbatch job array instead")
    how.add_argument(
        "--slurm-args",
        default="",
        help="extra sbatch options, e.g. '--partition gpu --time 24:00:00' (one flag: --slurm-args='--exclusive')",
    )
    how.add_argument(
        "--array-limit", type=int, default=None, help="with --slurm: at most this many tasks at once (%%N)"
    )
    how.add_argument(
        "--slurm-gpus",
        type=int,
        default=1,
        help="with --slurm: GPUs per array task (--gres=gpu:N; default 1; 0 for a partition without GPUs)",
    )


def _add_action_args(what: argparse._ArgumentGroup) -> None:
    what.add_argument("--dry-run", action="store_true", help="print what would run or be submitted; run nothing")
    what.add_argument(
        "--status",
        action="store_true",
        help="list the sweep's runs as finished, running (lock held), failed (log ends in an error), "
        "interrupted (resumable) or pending; run nothing",
    )
    what.add_argument("--retry-failed", action="store_true", help="run (or submit) only the runs that failed")
    what.add_argument("--python", default=sys.executable, help="interpreter for the commands (default: this one)")


def _check_writable(root: Path) -> None:
    try:
        run_files.check_save_dir(root, "--root")
    except UsageError as err:
        raise SweepError(str(err)) from None


def trial_pairs(args) -> list[tuple]:
    """(training seed, unlearning seed) of every trial; a training seed of None: the one shared trained model."""
    if args.trials is not None:
        others = (args.train_seeds, args.seeds, args.prune_seed)
        first, last = args.trials
        if not 1 <= first <= last or any(value is not None for value in others):
            raise SweepError(
                "--trials K (K >= 1) or A-B (1 <= A <= B) sets both seeds; give it without --seeds, --train-seeds, "
                "--prune-seed"
            )
        return [(k, k) for k in range(first, last + 1)]
    seeds = list(dict.fromkeys(args.seeds if args.seeds is not None else [1, 2, 3]))  # each seed once
    if args.train_seeds is not None:
        if args.prune_seed is not None:
            raise SweepError("--train-seeds replaces --prune-seed; give one of them")
        return [(train, seed) for train in dict.fromkeys(args.train_seeds) for seed in seeds]
    return [(None, seed) for seed in seeds]


def check_args(args) -> None:
    if not args.rates or any(not 0.0 <= rate < 1.0 for rate in args.rates):
        raise SweepError(f"--rates must be fractions in [0, 1), got {args.rates}")
    # one rate per folder: rates that print alike (0.5 and 0.5000001 both run as --rate 0.5) are one rate
    args.rates = list({rate_text(rate): rate for rate in sorted(set(args.rates), reverse=True)}.values())[::-1]
    args.trial_pairs = trial_pairs(args)
    if not args.runs_name or args.runs_name in (".", "..") or "/" in args.runs_name:
        raise SweepError(f"--runs-name {args.runs_name!r} must be one folder name, e.g. tuned")
    if any(char in str(args.root) for char in "\n\r") or (args.slurm and any(c.isspace() for c in str(args.root))):
        raise SweepError(
            f"--root {args.root!r} holds a line break{' or a space' if args.slurm else ''}, which the array's command "
            f"and #SBATCH files cannot carry; choose another --root"
        )
    pairs = [item.partition("=") for item in args.method_args]
    if any(not name or not sep for name, sep, _ in pairs):
        raise SweepError(f"--method-args takes NAME=ARGS, got {args.method_args}")
    args.method_args = {name: rest for name, _, rest in pairs}
    known = sweep_methods()
    unregistered = [m for m in [*args.methods, *args.method_args] if m not in unlearn.METHODS]
    if unregistered:  # a name becomes a folder: only registered names (no "../x") get one
        names = ", ".join(method.name for method in unlearn.listed())
        raise SweepError(f"unknown method {unregistered[0]!r}; choose from {names}")
    unknown = [m for m in args.methods if m not in known and m not in args.method_args]
    if unknown:
        raise SweepError(
            f"unknown method {', '.join(unknown)}; choose from {', '.join(known)} "
            "or give its arguments with --method-args NAME=ARGS"
        )
    bad = [s for s in args.scenarios if s not in SCENARIO_ARGS]
    if bad:
        raise SweepError(f"unknown scenario {', '.join(bad)}; choose from {', '.join(SCENARIO_ARGS)}")
    if args.random_count is None and "random" in args.scenarios:
        if args.dataset not in dataset.DATASETS:
            raise SweepError(f"unknown --dataset '{args.dataset}'; choose from {', '.join(dataset.DATASETS)}")
        args.random_count = dataset.DATASETS[args.dataset].random_count
    if not (args.dry_run or args.status):
        _check_writable(REPO / args.root)
    if args.slurm and args.gpus:
        raise SweepError("--gpus is for local runs; with --slurm every array task gets --slurm-gpus GPUs (default 1)")
    if args.slurm_gpus < 0:
        raise SweepError(f"--slurm-gpus {args.slurm_gpus} is negative; give 0 (no GPU) or more")


def print_plan(stages: dict[str, list[Run]], echo=print) -> dict[str, list[Run]]:
    """Print each stage's commands (finished ones as comments); return the pending runs per stage."""
    pending = {}
    for stage, runs in stages.items():
        finished = [run.finished() for run in runs]
        pending[stage] = [run for run, done in zip(runs, finished, strict=True) if not done]
        echo(f"# {stage}: {len(runs)} runs, {sum(finished)} finished (skipped), {len(pending[stage])} to run")
        for run, done in zip(runs, finished, strict=True):
            echo(f"# finished, skipped: {run.command}" if done else run.command)
    return pending


def report_failures(total: int, failed: list[Run], echo=print) -> None:
    """Failed runs one by one with their log; runs never started, one line per missing checkpoint."""
    crashed = [run for run in failed if run.returncode is not None]
    waiting = {}
    for run in failed:
        if run.returncode is None and run.note.startswith("not started: its folder"):
            echo(f"# NOT STARTED: {run.note[len('not started: ') :]}")
        elif run.returncode is None:
            waiting.setdefault(run.needs, []).append(run)
    echo(
        f"# done: {total - len(failed)} of {total} runs succeeded, {len(crashed)} failed, "
        f"{len(failed) - len(crashed)} not started"
    )
    for run in crashed:
        echo(f"# FAILED: {run.command}\n#   {run.note}")
    for needs, runs in waiting.items():
        echo(f"# NOT STARTED: {len(runs)} runs need {needs}, which does not exist (did its prune run fail?)")


def main(argv=None, echo=print) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    stages = plan(args)
    if args.status:
        print_status(stages, echo)
        return 0
    if args.retry_failed:
        stages = {stage: [run for run in runs if run_state(run) == "failed"] for stage, runs in stages.items()}
    pending = print_plan(stages, echo)
    if args.slurm:
        return submit_slurm(pending, args, echo)
    if args.dry_run:
        return 0
    failed = []
    for runs in pending.values():
        failed += [run for run in run_pool(runs, args.gpus, REPO, echo) if run.returncode not in FINISHED_STATUSES]
    report_failures(sum(len(runs) for runs in pending.values()), failed, echo)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
