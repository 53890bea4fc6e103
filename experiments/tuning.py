"""Tuning one method for one setting with Optuna: main_tune.py's whole job.

A setting is one mask file (a trial's model at one sparsity), one forget set, one method and the
flags it keeps fixed; its reference is the finished Retrain run of the same model, sparsity and
forget set. Every Optuna trial unlearns with the flags the sampler (TPE, seeded) proposes from the
method's search space (``Param``s in its registry entry) and scores the result by

    the Avg. Gap to the reference over UA, MIA-Efficacy, RA and VA,

VA (validation accuracy) standing where the paper's Avg. Gap has TA, and the attack's shadow
non-members taken from the validation set (``evaluation.metrics.validation_metrics``). The test
split is removed from the data before anything runs, so tuning cannot read it. Iterative methods
report the objective after every epoch, and the median pruner stops a trial that is worse than the
median of earlier ones at the same epoch; a pruned or diverged trial counts towards the budget.

The study lives in an Optuna storage (SQLite in ``--save_dir`` by default, any RDB URL, or a journal
file for a shared filesystem); rerunning the command continues it up to ``--n-trials`` finished
trials, and several workers (``--slurm W``) can share it. The study records its setting; a study of
another setting under the same name is refused. ``best.json`` holds the selected flags, ready for
``main_forget.py`` or ``scripts/sweep.py --tuned``; ``trials.csv`` one row per trial.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import warnings
from pathlib import Path

import optuna
import sqlalchemy

import dataset
import pruner
import unlearn
import utils
from evaluation.metrics import VALIDATION_METRICS, validation_metrics
from experiments import arg_parser, run_files, run_identity, training_files, unlearning_files
from experiments.experiment import make_runtime, validate_common
from experiments.unlearning_run import prepare_model, unlearning_context
from training import interrupts
from training.interrupts import Diverged, Stopped
from training.trainer import weights_are_finite
from unlearn import Param
from utils import UsageError

OBJECTIVE = "Avg. Gap to Retrain over UA, MIA-Efficacy, RA and validation accuracy (test split never read)"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
SETTING_ATTR = "setting"


# ----------------------------------------------------------------------------- the search space


def search_space(method, overrides: list[str], args) -> tuple[Param, ...]:
    """The method's registered space with ``--space`` overrides: ``NAME=LOW:HIGH[:log|:linear]`` or ``NAME=off``."""
    if not method.search_space:
        raise UsageError(
            f"--unlearn {method.name} has no search space in its registry entry, so it cannot be tuned; "
            f"tune another method (those with one: {', '.join(tunable())})"
        )
    space = {param.name: param for param in method.search_space}
    for text in overrides:
        name, sep, rest = text.partition("=")
        if not sep or not hasattr(args, name):
            raise UsageError(
                f"--space {text!r}: give NAME=LOW:HIGH[:log|:linear] or NAME=off for a flag of this script"
            )
        if rest == "off":
            space.pop(name, None)
            continue
        space[name] = _range(text, name, rest, space.get(name), getattr(args, name))
    if not space:
        raise UsageError("--space turned every parameter off; leave at least one to search")
    return tuple(space.values())


def _range(text: str, name: str, rest: str, registered: Param | None, value) -> Param:
    parts = rest.split(":")
    scale = parts.pop() if parts[-1] in ("log", "linear") else None
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        raise UsageError(f"--space {text!r}: LOW:HIGH must be two numbers, e.g. {name}=0.001:0.1:log") from None
    integer = registered.integer if registered else isinstance(value, int) and not isinstance(value, bool)
    log = (scale == "log") if scale else bool(registered and registered.log)
    try:
        return Param(name, low, high, log=log, integer=integer)
    except ValueError as err:
        raise UsageError(f"--space {text!r}: {err}") from None


def tunable() -> list[str]:
    return [method.name for method in unlearn.listed() if method.search_space]


def suggest(trial, space) -> dict:
    """The flags of one trial, drawn by the study's sampler."""
    params = {}
    for param in space:
        if param.integer:
            params[param.name] = trial.suggest_int(param.name, int(param.low), int(param.high), log=param.log)
        else:
            params[param.name] = trial.suggest_float(param.name, param.low, param.high, log=param.log)
    return params


def flags_text(params: dict) -> str:
    """``{"unlearn_lr": 0.0123}`` as ``--unlearn_lr 0.0123`` (floats written exactly, so a rerun is the same run)."""
    return " ".join(f"--{name} {value!r}" for name, value in params.items())


def preset_params(method, space) -> dict | None:
    """The published preset's values of the searched flags, when every one lies inside its range."""
    if method.preset is None:
        return None
    words = method.preset.tokens()
    given = {words[i][2:]: words[i + 1] for i in range(len(words) - 1) if words[i].startswith("--")}
    params = {}
    for param in space:
        if param.name not in given:
            return None
        value = int(given[param.name]) if param.integer else float(given[param.name])
        if not param.low <= value <= param.high:
            return None
        params[param.name] = value
    return params


# ----------------------------------------------------------------------------- objective


def without_test(data):
    """``data`` with an empty test split: nothing that tunes can read it."""
    return dataclasses.replace(data, test_images=data.test_images[:0], test_labels=data.test_labels[:0])


def avg_gap(metrics: dict, reference: dict) -> float:
    return float(sum(abs(metrics[name] - reference[name]) for name in VALIDATION_METRICS) / len(VALIDATION_METRICS))


def measure(model, data, forget, runtime) -> dict:
    sets = (model, data, forget.forget_indices, forget.retain_indices, runtime, forget.forgotten_class)
    return validation_metrics(*sets)


class Objective:
    """One Optuna trial: unlearn from θ_o with the proposed flags and score the result against the reference."""

    def __init__(self, args, setup: dict, space, log):
        self.args, self.setup, self.space, self.log = args, setup, space, log

    def __call__(self, trial) -> float:
        interrupts.check("the study, between two trials")  # methods without epochs never look for a signal
        params = suggest(trial, self.space)
        args = copy.copy(self.args)
        vars(args).update(params)
        setup, method = self.setup, self.setup["method"]
        self.log(f"trial {trial.number}: {flags_text(params)}")
        model = prepare_model(args, setup["data"], method, setup["state_dict"], setup["runtime"])
        ctx = unlearning_context(args, setup["data"], setup["forget"], setup["runtime"], method, self.log)
        ctx.progress.save = lambda state: self._after_epoch(trial, model, state)
        try:
            method.fn(model, ctx)
            pruner.refresh_weights(model)
            if not weights_are_finite(model):
                raise Diverged(method.name)
            metrics = measure(model, setup["data"], setup["forget"], setup["runtime"])
        except Diverged as err:
            trial.set_user_attr("diverged", str(err))
            self.log(f"trial {trial.number}: diverged ({err}); counted as pruned")
            raise optuna.TrialPruned(str(err)) from None
        except Stopped:
            trial.study.enqueue_trial(params, user_attrs={"rerun_of": trial.number})  # run it again on resume
            raise
        value = avg_gap(metrics, setup["reference"])
        trial.set_user_attr("metrics", metrics)
        self.log(f"trial {trial.number}: objective {value:.3f} ({_metrics_text(metrics)})")
        return value

    def _after_epoch(self, trial, model, state) -> None:
        if state.get("partial_epoch") is not None:  # stopped mid-epoch by a signal: the trial is rerun whole
            return
        setup = self.setup
        try:
            metrics = measure(model, setup["data"], setup["forget"], setup["runtime"])
        except Diverged:
            return  # the end of the trial says so
        value = avg_gap(metrics, setup["reference"])
        trial.report(value, step=state["epoch"])
        if trial.should_prune():
            trial.set_user_attr("pruned_after_epoch", state["epoch"])
            self.log(f"trial {trial.number}: pruned after epoch {state['epoch']} (objective {value:.3f})")
            raise optuna.TrialPruned()


def _metrics_text(metrics: dict) -> str:
    return "  ".join(f"{name} {value:.2f}" for name, value in metrics.items())


# ----------------------------------------------------------------------------- the setting and its reference


def load_reference(path, setup: dict, args) -> tuple[dict, dict]:
    """(validation metrics, identity) of the finished Retrain run at ``path`` (its folder or checkpoint),
    checked to unlearn the same forget set from the same mask as this study."""
    path = Path(path)
    if path.is_dir():
        path = unlearning_files.paths(path, "retrain")["checkpoint"]
    if not path.is_file():
        raise UsageError(
            f"--reference '{path}' does not exist; give the folder of a finished Retrain run "
            "(main_forget.py --unlearn retrain)"
        )
    saved = unlearning_files.read_finished(path)
    identity = saved.get("identity") if isinstance(saved.get("identity"), dict) else {}
    problem = run_identity.reference_problem(identity, setup["identity"])
    if problem:
        raise UsageError(
            f"--reference '{path}' is not this setting's Retrain: {problem}; give the Retrain run of the same "
            "--mask and forget set"
        )
    model = prepare_model(args, setup["data"], unlearn.get_method("retrain"), setup["state_dict"], setup["runtime"])
    pruner.load_pruned_state(model, saved["state_dict"])
    pruner.refresh_weights(model)
    return measure(model, setup["data"], setup["forget"], setup["runtime"]), identity


def setting_of(setup: dict, space, args) -> dict:
    """What a study is for: the unlearning identity without the searched flags, the space, the reference and
    the sampler's seed and start-up. A study holding another setting is never continued."""
    identity = copy.deepcopy(setup["identity"])
    for param in space:
        identity["args"].pop(param.name, None)
    return {
        "objective": OBJECTIVE,
        "unlearning": identity,
        "space": [dataclasses.asdict(param) for param in space],
        "reference": run_identity.digest(setup["reference_identity"]),
        "sampler": {"name": "TPE", "seed": args.sampler_seed, "n_startup_trials": args.n_startup_trials},
        "pruner": {"name": "median", "n_startup_trials": args.pruner_startup, "n_warmup_steps": 0},
    }


# ----------------------------------------------------------------------------- the study


def storage_of(args):
    """The Optuna storage: ``--storage`` (an RDB URL, or ``journal:PATH``), else SQLite in --save_dir.

    RDB storages get a heartbeat, so a worker killed without warning leaves its trial marked failed and
    rerun (``RetryHeartbeatStaleTrialCallback``) instead of running forever.
    """
    url = args.storage or f"sqlite:///{Path(args.save_dir).resolve() / 'study.db'}"
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:") :]))
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():  # the heartbeat is marked experimental; it is what makes a kill recoverable
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=kwargs, heartbeat_interval=60, grace_period=180, heartbeat_stale_trial_callback=retry
            )
    except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as err:  # a bad URL, no driver, no server
        raise UsageError(f"--storage {url!r} cannot be opened ({utils.one_line(str(err))[:200]}); give an RDB URL "
                         "(sqlite:///PATH, postgresql://...) or journal:PATH") from None  # fmt: skip


def open_study(args, setting: dict):
    """The study named --study-name, created with ``setting`` or continued when it holds the same one."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner_ = optuna.pruners.MedianPruner(n_startup_trials=args.pruner_startup, n_warmup_steps=0)
    study = optuna.create_study(
        storage=storage_of(args),
        study_name=args.study_name,
        direction="minimize",
        pruner=pruner_,
        load_if_exists=True,
    )
    # A seeded sampler starts its random stream afresh in every process, so a continued study (or a second
    # worker) would propose the earlier trials again: the seed moves on with the trials the study holds.
    study.sampler = optuna.samplers.TPESampler(
        seed=args.sampler_seed + len(study.trials) + 7919 * (args.worker or 0), n_startup_trials=args.n_startup_trials
    )
    saved = study.user_attrs.get(SETTING_ATTR)
    if saved is None and study.trials:
        raise UsageError(f"study '{args.study_name}' has trials but records no setting; give another --study-name")
    if saved is None:
        study.set_user_attr(SETTING_ATTR, setting)
        return study, True
    if json.dumps(saved, sort_keys=True) != json.dumps(setting, sort_keys=True):
        raise UsageError(
            f"study '{args.study_name}' in {args.storage or Path(args.save_dir) / 'study.db'} was made for another "
            f"setting ({_first_difference(saved, setting)}); give another --study-name or --save_dir"
        )
    return study, False


def _first_difference(saved, current, where="") -> str:
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in sorted(set(saved) | set(current)):
            if saved.get(key) != current.get(key):
                return _first_difference(saved.get(key), current.get(key), f"{where}.{key}" if where else key)
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        for index, (old, new) in enumerate(zip(saved, current)):
            if old != new:
                return _first_difference(old, new, f"{where}[{index}]")
    return f"{where} is {json.dumps(saved)[:60]} there, {json.dumps(current)[:60]} here"


def finished_count(study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def optimize(study, objective, n_trials: int, log) -> None:
    """Run trials until the study holds ``n_trials`` finished ones (shared with any other worker)."""
    remaining = n_trials - finished_count(study)
    if remaining <= 0:
        log(f"the study already holds {finished_count(study)} finished trials (--n-trials {n_trials}); nothing to run")
        return
    stop = optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)
    study.optimize(objective, n_trials=remaining, callbacks=[stop], catch=())


# ----------------------------------------------------------------------------- outputs


def best_record(study, setup: dict, space, args) -> dict:
    """What best.json holds: the selected flags and how they were chosen."""
    done = [trial for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    record = {
        "method": args.unlearn,
        "study": args.study_name,
        "storage": args.storage or str(Path(args.save_dir) / "study.db"),
        "objective": OBJECTIVE,
        "n_trials": args.n_trials,
        "finished_trials": finished_count(study),
        "space": [dataclasses.asdict(param) for param in space],
        "fixed_args": fixed_args(args, space),
        "reference": setup["reference"],
        "setting": study.user_attrs.get(SETTING_ATTR),
        "provenance": utils.provenance(setup["runtime"].device),
    }
    if done:
        best = min(done, key=lambda trial: trial.value)
        record["best"] = {
            "trial": best.number,
            "objective": best.value,
            "params": best.params,
            "method_args": flags_text(best.params),
            "metrics": best.user_attrs.get("metrics"),
        }
    preset = [trial for trial in study.get_trials(deepcopy=False) if "preset" in trial.user_attrs]
    if preset:  # the published preset's own trial: what the selection was compared with
        trial = preset[0]
        record["preset"] = {"trial": trial.number, "state": trial.state.name, "objective": trial.value,
                            "params": trial.params, "metrics": trial.user_attrs.get("metrics")}  # fmt: skip
    return record


NOT_FIXED = ("unlearn", *run_identity.REFERENCE_FLAGS, *run_identity.TRIAL_FLAGS)  # the sweep sets these per run


def fixed_args(args, space) -> str:
    """The flags every trial shared (all that define an unlearning run but the data, the forget request, the
    seeds and the searched ones), so that a held-out trial runs exactly the setting that was tuned."""
    own = {flag.name for flag in unlearn.get_method(args.unlearn).flags}
    searched = {param.name for param in space} | ({flag.name for flag in unlearn.method_flags()} - own)
    names = run_identity.defining_flags(run_identity.UNLEARNING, args.unlearn)
    return arg_parser.command_line({name: getattr(args, name) for name in names if name not in (*NOT_FIXED, *searched)})


TRIAL_COLUMNS = ("trial", "state", "objective", "pruned_after_epoch", "diverged", "started_utc", "finished_utc")


def trials_csv(study, space) -> str:
    """One row per trial: its number, state, objective, every searched flag and every metric."""
    columns = [*TRIAL_COLUMNS, *(param.name for param in space), *VALIDATION_METRICS]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for trial in study.get_trials(deepcopy=False):
        row = {
            "trial": trial.number,
            "state": trial.state.name,
            "objective": "" if trial.value is None else trial.value,
            "pruned_after_epoch": trial.user_attrs.get("pruned_after_epoch", ""),
            "diverged": trial.user_attrs.get("diverged", ""),
            "started_utc": trial.datetime_start.isoformat() if trial.datetime_start else "",
            "finished_utc": trial.datetime_complete.isoformat() if trial.datetime_complete else "",
            **trial.params,
            **(trial.user_attrs.get("metrics") or {}),
        }
        writer.writerow(row)
    return out.getvalue()


def write_outputs(study, setup, space, args, log) -> dict:
    record = best_record(study, setup, space, args)
    folder = Path(args.save_dir)
    utils.atomic_write_text(trials_csv(study, space), folder / "trials.csv")
    utils.atomic_write_json(record, folder / "best.json")
    if "best" in record:
        best = record["best"]
        log(f"best of {record['finished_trials']} finished trials: trial {best['trial']}, objective "
            f"{best['objective']:.3f}: {best['method_args']} -> {folder / 'best.json'}")  # fmt: skip
    else:
        log(f"no trial finished unpruned yet -> {folder / 'trials.csv'}")
    return record


# ----------------------------------------------------------------------------- the run


def validate(args) -> None:
    validate_common(args)
    method = unlearn.get_method(args.unlearn)
    if method.name == "retrain":
        raise UsageError("--unlearn retrain is the reference every trial is scored against; tune another method")
    search_space(method, args.space, args)
    if args.mask is None or args.reference is None:
        raise UsageError("--mask and --reference are required: the checkpoint to unlearn and its Retrain run's folder")
    if args.n_trials < 1 or args.n_startup_trials < 0 or args.pruner_startup < 0:
        raise UsageError("--n-trials must be at least 1, --n-startup-trials and --pruner-startup at least 0")
    if args.slurm is not None and args.slurm < 1:
        raise UsageError(f"--slurm {args.slurm}: give the number of workers, at least 1")


def prepare(args, log) -> dict:
    """Runtime, data without its test split, forget set, θ_o's file, identity and the reference's metrics."""
    method = unlearn.get_method(args.unlearn)
    state_dict, checkpoint = training_files.load_mask_file(args.mask, args)
    runtime = make_runtime(args)
    data = without_test(dataset.load_data(args, runtime.device))
    forget = dataset.forget_set_of(data, args)
    run_identity.check_left_out(checkpoint, forget)
    identity = run_identity.of_args(
        run_identity.UNLEARNING,
        args,
        mask=run_identity.mask_input(checkpoint, state_dict),
        forget_set=run_identity.forget_input(forget.scenario, forget.forget_indices, forget.forgotten_class),
    )
    setup = {"method": method, "state_dict": state_dict, "runtime": runtime, "data": data, "forget": forget}
    setup["identity"] = identity
    setup["reference"], setup["reference_identity"] = load_reference(args.reference, setup, args)
    log(forget.describe(len(data.train_labels)))
    log(f"reference (Retrain): {_metrics_text(setup['reference'])}")
    return setup


def run(args, log) -> dict:
    """main_tune.py after parsing and ``validate``: tune, then write best.json and trials.csv."""
    utils.begin_log()
    run_files.check_save_dir(args.save_dir)
    folder = Path(args.save_dir)
    utils.keep_log(folder if args.worker is None else run_files.check_save_dir(folder / f"worker{args.worker}"))
    method = unlearn.get_method(args.unlearn)
    space = search_space(method, args.space, args)
    setup = prepare(args, log)
    study, new = open_study(args, setting_of(setup, space, args))
    log(f"study '{args.study_name}': {finished_count(study)} of {args.n_trials} trials finished; searching "
        + ", ".join(f"{p.name} in [{p.low:g}, {p.high:g}]{' (log)' if p.log else ''}" for p in space))  # fmt: skip
    if new and args.preset_trial:
        params = preset_params(method, space)
        if params is not None:
            study.enqueue_trial(params, user_attrs={"preset": method.preset.source})
            log(f"trial 0 is the published preset: {flags_text(params)}")
    if args.slurm is not None:
        return submit_workers(args, log)
    try:
        optimize(study, Objective(args, setup, space, log), args.n_trials, log)
    finally:
        record = write_outputs(study, setup, space, args, log)
    return record


SUBMIT_ONLY = {"--slurm": 1, "--slurm-args": 1, "--slurm-gpus": 1, "--dry-run": 0}  # flag: values it takes


def worker_command(argv: list[str], worker: int) -> str:
    """This command as one worker of the study runs it: without the submission flags, with ``--worker``."""
    import shlex
    import sys

    kept, skip = [], 0
    for word in argv:
        if skip:
            skip -= 1
            continue
        name = word.split("=", 1)[0]
        if name in SUBMIT_ONLY:
            skip = SUBMIT_ONLY[name] if "=" not in word else 0
            continue
        kept.append(word)
    here = shlex.quote(str(Path.cwd()))
    return f"cd {here} && {shlex.join([sys.executable, *kept, '--worker', str(worker)])}"


def submit_workers(args, log) -> dict:
    """--slurm W: the study is created (setting, reference, preset trial) here; W array tasks then share it."""
    import sys

    from experiments import slurm

    folder = Path(args.save_dir)
    commands = [worker_command(sys.argv, worker) for worker in range(args.slurm)]
    dirs = [folder / f"worker{worker}" for worker in range(args.slurm)]
    options = {"slurm_args": args.slurm_args, "gpus": args.slurm_gpus, "dry_run": args.dry_run}
    job = slurm.submit_array(f"tune_{args.study_name}", commands, dirs, folder, options, log)
    if job is not None:
        log(
            f"submitted job {job}: {args.slurm} workers on study '{args.study_name}'; "
            "each writes best.json when it stops"
        )
    return {"job": job, "workers": args.slurm}
