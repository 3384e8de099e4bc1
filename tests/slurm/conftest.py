"""A real one-node SLURM cluster for tests (started by ``tests/slurm/cluster.sh``).

The ``slurm_cluster`` fixture skips when SLURM is not installed, unless ``VHD_REQUIRE_SLURM=1``
(as CI sets it), where it fails instead. Jobs run on this machine as the user running pytest,
in the submitting directory, with pytest's environment (sbatch's default ``--export=ALL``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CLUSTER_SH = Path(__file__).with_name("cluster.sh")
HOW_TO = (
    "install it with `apt-get install -y slurm-wlm munge` and start it with "
    "`tests/slurm/cluster.sh start` (as root)"
)
TERMINAL = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"}
)
# `Key=value` pairs of `scontrol show job -o`; values may hold spaces, keys hold no spaces.
_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")

JobId = int | str  # 42, or "42_1" for one task of an array job

__all__ = ["TERMINAL", "SlurmCluster", "start_cluster"]


def _scontrol(*args: str) -> str:
    proc = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"scontrol {' '.join(args)}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def parse_record(line: str) -> dict[str, str]:
    """One line of ``scontrol show job -o`` as a dict (``JobState``, ``Restarts``, ...)."""
    keys = list(_KEY.finditer(line))
    return {
        m.group(1): line[m.end() : nxt.start() if nxt else len(line)].strip()
        for m, nxt in zip(keys, [*keys[1:], None], strict=True)
    }


def task_ids(spec: str) -> list[int]:
    """The task ids of an ``ArrayTaskId`` value: ``"3"``, ``"1-3%1"``, ``"0,4-8:2"``."""
    ids: list[int] = []
    for part in spec.split("%")[0].split(","):
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        ids.extend(range(int(first), int(last or first) + 1, int(step or 1)))
    return ids


@dataclass
class SlurmCluster:
    """Submits and watches jobs on the test cluster; jobs it submitted are cancelled at the end.

    ``state``/``wait`` return a ``str`` for a job (or one array task, ``"42_1"``) and a
    ``{task_id: state}`` dict for an array job's id. A finished job stays visible to
    ``scontrol`` for MinJobAge (300 s); there is no ``sacct``.
    """

    submitted: list[int] = field(default_factory=list)

    def submit(self, script_path: str | os.PathLike[str], *sbatch_args: str) -> int:
        """``sbatch --parsable ARGS SCRIPT`` run in the script's folder, the job's default working
        directory (and where ``slurm-%j.out`` goes without ``--output``); returns the job id."""
        script = Path(script_path).resolve()
        proc = subprocess.run(
            ["sbatch", "--parsable", *sbatch_args, str(script)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=script.parent,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch failed: {proc.stderr.strip()}")
        job_id = int(proc.stdout.strip().split(";")[0])
        self.submitted.append(job_id)
        return job_id

    def records(self, job_id: JobId) -> list[dict[str, str]]:
        """All records of ``scontrol show job -o``: one per array task (pending tasks share one)."""
        return [
            parse_record(line)
            for line in _scontrol("show", "job", "-o", str(job_id)).splitlines()
            if line.strip()
        ]

    def show(self, job_id: JobId) -> dict[str, str]:
        """The job's ``scontrol show job -o`` fields (an array job: the record of its own id)."""
        records = self.records(job_id)
        return next((r for r in records if r.get("JobId") == str(job_id)), records[0])

    def state(self, job_id: JobId) -> str | dict[int, str]:
        records = self.records(job_id)
        first = records[0]
        is_array = first.get("ArrayJobId") == str(job_id) and "ArrayTaskId" in first
        if not is_array:
            return first["JobState"]
        return {task: r["JobState"] for r in records for task in task_ids(r["ArrayTaskId"])}

    def wait(
        self,
        job_id: JobId,
        states: Collection[str] = TERMINAL,
        timeout: float = 120.0,
        poll: float = 0.5,
    ) -> str | dict[int, str]:
        """Poll until the job (every task of an array job) is in one of ``states``."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(job_id)
            current = set(state.values()) if isinstance(state, dict) else {state}
            if current <= set(states):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id} still {state} after {timeout} s:\n"
                    + _scontrol("show", "job", str(job_id))
                )
            time.sleep(poll)

    def requeue(self, job_id: JobId) -> None:
        """``scontrol requeue``: the job gets SIGCONT+SIGTERM (SIGKILL after KillWait=5 s), goes
        back to PENDING (Reason=BeginTime) and starts again about cred_expire+1 = 6 s later with
        ``SLURM_RESTART_COUNT`` one higher."""
        _scontrol("requeue", str(job_id))

    def cancel(self, job_id: JobId) -> None:
        subprocess.run(["scancel", str(job_id)], capture_output=True, timeout=30, check=False)


def start_cluster() -> SlurmCluster:
    """Start the cluster (idempotent), or skip/fail the test when SLURM is unavailable."""
    required = os.environ.get("VHD_REQUIRE_SLURM") == "1"

    def unavailable(reason: str) -> None:
        if required:
            pytest.fail(f"VHD_REQUIRE_SLURM=1 but {reason}; {HOW_TO}", pytrace=False)
        pytest.skip(f"{reason}; {HOW_TO}")

    if shutil.which("sbatch") is None:
        unavailable("SLURM is not installed (no sbatch on PATH)")
    proc = subprocess.run(
        [str(CLUSTER_SH), "start"], capture_output=True, text=True, timeout=300, check=False
    )
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode in (2, 3):  # cannot start here: no daemons, not root, a foreign cluster
        unavailable(f"the test cluster cannot start: {output}")
    elif proc.returncode != 0:
        pytest.fail(f"tests/slurm/cluster.sh start failed:\n{output}", pytrace=False)
    return SlurmCluster()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    cluster = start_cluster()
    yield cluster
    if cluster.submitted:  # leave no job behind; the cluster itself stays up
        subprocess.run(["scancel", *map(str, cluster.submitted)], capture_output=True, timeout=30)
