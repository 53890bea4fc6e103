"""Slurm job arrays: one array task per command line, logging to that run's log.txt like a local run."""

from __future__ import annotations

import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXIT_MARK = "=== exit "  # the last line a run's log.txt gets, locally or under Slurm


def sbatch_script(
    stage: str, n_tasks: int, commands_file: Path, log_dir: Path, array_limit: int | None, gpus: int = 1
) -> str:
    """An array job whose task i runs line i+1 of ``commands_file``, logging to that run's log.txt.

    The run's folder is line i+1 of the ``.dirs`` file beside it; its log.txt gets a header, the
    output and an ``=== exit N`` line, as local runs do, so ``--status`` reads both the same way.
    """
    limit = f"%{array_limit}" if array_limit else ""
    gres = f"#SBATCH --gres=gpu:{gpus}\n" if gpus else ""
    q = shlex.quote
    dirs_file = commands_file.with_suffix(".dirs")
    return f"""#!/bin/bash
#SBATCH --job-name=sweep_{stage}
#SBATCH --array=0-{n_tasks - 1}{limit}
{gres}#SBATCH --output={log_dir}/{stage}_%A_%a.out
# Written by scripts/sweep.py: array task i runs line i+1 of {commands_file.name}, logging to the run's log.txt.
set -euo pipefail
cd {q(str(REPO))}
line=$((SLURM_ARRAY_TASK_ID + 1))
cmd=$(sed -n "${{line}}p" {q(str(commands_file))})
if [ -z "$cmd" ]; then
    echo "no command on line $line of {commands_file}" >&2
    exit 1
fi
dir=$(sed -n "${{line}}p" {q(str(dirs_file))} 2>/dev/null || true)
log=/dev/stdout
if [ -n "$dir" ]; then mkdir -p "$dir"; log="$dir/log.txt"; fi
echo "task $SLURM_ARRAY_TASK_ID on $(hostname): $cmd (log: $log)"
task="${{SLURM_ARRAY_JOB_ID:-}}_$SLURM_ARRAY_TASK_ID"
echo "=== $(date '+%Y-%m-%d %H:%M:%S') slurm $task on $(hostname) $cmd" >> "$log"
set +e
(eval "$cmd") >> "$log" 2>&1
status=$?
set -e
echo "{EXIT_MARK}$status" >> "$log"
exit $status
"""


def submit_array(stage: str, commands: list[str], dirs: list, folder: Path, options: dict, log) -> str | None:
    """Write ``{folder}/{stage}.commands`` (one command per array task), its ``.dirs`` (each task's log folder)
    and ``.sbatch``, and submit it; returns the job id (None with ``options["dry_run"]``).

    ``options``: ``slurm_args`` (extra sbatch options, one string), ``gpus`` (per task), ``dry_run``.
    """
    import subprocess

    from utils import UsageError, atomic_write_text

    folder = Path(folder).resolve()
    commands_file = folder / f"{stage}.commands"
    script_file = commands_file.with_suffix(".sbatch")
    atomic_write_text("".join(f"{command}\n" for command in commands), commands_file)
    atomic_write_text("".join(f"{Path(d).resolve()}\n" for d in dirs), commands_file.with_suffix(".dirs"))
    (folder / "slurm_logs").mkdir(exist_ok=True)
    script = sbatch_script(stage, len(commands), commands_file, folder / "slurm_logs", None, options["gpus"])
    atomic_write_text(script, script_file)
    sbatch = ["sbatch", "--parsable", *shlex.split(options["slurm_args"]), str(script_file)]
    if options["dry_run"]:
        log(f"would run: {shlex.join(sbatch)}  ({len(commands)} array tasks, {commands_file})")
        return None
    done = subprocess.run(sbatch, capture_output=True, text=True)
    if done.returncode != 0:
        raise UsageError(f"sbatch failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip().split(";")[0]
