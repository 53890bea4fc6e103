"""A throw-away single-node Slurm (munge, slurmctld, slurmd) under a temporary folder, for the Slurm tests.

Everything it writes (keys, config, state, spool, logs) stays in that folder; the daemons it starts
are stopped by their process ids when the context ends, also on failure. It needs root and Debian's
packages slurmctld, slurmd, slurm-client and munge.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")


def missing_requirements() -> str | None:
    """Why a local cluster cannot start here, or None."""
    if os.geteuid() != 0:
        return "the local Slurm cluster needs root (slurmd runs jobs as their user)"
    absent = [name for name in BINARIES if shutil.which(name) is None]
    if absent:
        return f"missing {', '.join(absent)} (apt-get install slurmctld slurmd slurm-client munge)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _config(folder: Path, host: str, cpus: int) -> str:
    return f"""ClusterName=sweeptest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge.sock
CryptoType=crypto/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
SlurmdParameters=config_overrides
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@contextlib.contextmanager
def local_cluster(folder: Path):
    """Start the daemons; yield the environment (``SLURM_CONF``) that the Slurm commands need."""
    folder = Path(folder)
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    (folder / "slurm.conf").write_text(_config(folder, host, os.cpu_count() or 1))
    env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
    subprocess.run(["mungekey", "--create", "--keyfile", str(folder / "munge.key")], check=True, capture_output=True)
    daemons = []
    try:
        munge = [f"--key-file={folder}/munge.key", f"--socket={folder}/munge.sock", f"--log-file={folder}/munged.log"]
        munge += [f"--pid-file={folder}/munged.pid", f"--seed-file={folder}/munged.seed"]
        daemons.append(_start(["munged", "-F", "-f", *munge], folder / "munged.out", env))
        _wait(lambda: (folder / "munge.sock").exists(), "munged to create its socket", folder)
        daemons.append(_start(["slurmctld", "-D", "-f", str(folder / "slurm.conf")], folder / "slurmctld.out", env))
        daemons.append(_start(["slurmd", "-D", "-f", str(folder / "slurm.conf")], folder / "slurmd.out", env))
        _wait(lambda: _node_ready(env), "the node to become idle", folder)
        yield env
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
        for daemon in reversed(daemons):
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def _start(command, log: Path, env) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)


def _node_ready(env) -> bool:
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() in ("idle", "mix", "alloc")


def _wait(ready, what: str, folder: Path, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if ready():
            return
        time.sleep(0.5)
    logs = "".join(path.read_text()[-2000:] for path in sorted(folder.glob("*.out")) + sorted(folder.glob("*.log")))
    raise RuntimeError(f"timed out waiting for {what}; daemon logs:\n{logs}")


def wait_for_queue(env, timeout: float = 900) -> None:
    """Until no job of the cluster is pending or running."""
    end = time.time() + timeout
    while time.time() < end:
        done = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True)
        if done.returncode == 0 and not done.stdout.strip():
            return
        time.sleep(2)
    raise RuntimeError("timed out waiting for the Slurm queue to empty")
