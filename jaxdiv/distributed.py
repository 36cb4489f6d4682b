"""Joining a multi-process JAX job: ``jax.distributed.initialize`` from flags or the environment.

One process runs per host (per GPU under SLURM, or per simulated CPU host in tests); all of
them run the same command. Where the processes learn who they are, first match wins:

1. explicit values: the ``--coordinator_address`` / ``--num_processes`` / ``--process_id``
   flags, else ``$JAXDIV_COORDINATOR_ADDRESS`` / ``$JAXDIV_NUM_PROCESSES`` /
   ``$JAXDIV_PROCESS_ID`` (``launch/local.py`` sets these); all three are needed;
2. SLURM: inside ``srun`` (``SLURM_STEP_NODELIST`` and ``SLURM_NTASKS`` > 1), JAX derives
   the coordinator (first node of the step), process count and id from SLURM's variables;
3. Cloud TPU VM pod slice (``TPU_WORKER_HOSTNAMES`` with more than one host, or
   ``TPU_ACCELERATOR_TYPE`` with ``TPU_WORKER_ID``): JAX reads the TPU metadata;
4. Open MPI (``OMPI_COMM_WORLD_SIZE`` > 1, i.e. ``mpirun``): JAX reads its variables;
5. otherwise a single process: nothing to initialise.

``plan(...)`` decides without side effects (and is what the tests check); ``initialize(...)``
acts on the plan. It must run before anything touches a JAX device.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from jaxdiv.errors import JaxdivError

ENV_COORDINATOR = "JAXDIV_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAXDIV_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXDIV_PROCESS_ID"
MODES = ("auto", "off")


@dataclasses.dataclass(frozen=True)
class Plan:
    """How this process joins the job: ``kind`` is single, explicit, slurm, tpu or mpi."""

    kind: str
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None

    @property
    def multi_process(self) -> bool:
        return self.kind != "single"

    def describe(self) -> str:
        if self.kind == "single":
            return "single process"
        if self.kind == "explicit":
            return (
                f"process {self.process_id} of {self.num_processes}, coordinator "
                f"{self.coordinator_address}"
            )
        return f"{self.kind} cluster (process ids and coordinator from its environment)"


def _int(value, what: str, source: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise JaxdivError(f"{what} must be an integer, got {value!r} (from {source})") from None


def plan(
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    mode: str = "auto",
    env: Mapping[str, str] | None = None,
) -> Plan:
    """Decide how to join the job (see the module docstring); raises on inconsistent input."""
    env = os.environ if env is None else env
    if mode not in MODES:
        raise JaxdivError(f"unknown distributed mode {mode!r}; valid choices: {', '.join(MODES)}")
    if mode == "off":
        return Plan("single")
    given = {
        "coordinator address": (coordinator_address, "--coordinator_address", ENV_COORDINATOR),
        "number of processes": (num_processes, "--num_processes", ENV_NUM_PROCESSES),
        "process id": (process_id, "--process_id", ENV_PROCESS_ID),
    }
    values, sources = {}, {}
    for what, (flag_value, flag, var) in given.items():
        if flag_value is not None:
            values[what], sources[what] = flag_value, flag
        elif env.get(var):
            values[what], sources[what] = env[var], f"${var}"
    if values:
        missing = [f"{given[w][1]} (or ${given[w][2]})" for w in given if w not in values]
        if missing:
            raise JaxdivError(
                f"multi-process setup is incomplete: got {', '.join(sorted(values))} but not "
                f"{', '.join(missing)}; give all three, or none to detect SLURM or a TPU VM"
            )
        n = _int(
            values["number of processes"], "the number of processes", sources["number of processes"]
        )
        pid = _int(values["process id"], "the process id", sources["process id"])
        address = str(values["coordinator address"])
        if n < 1 or not 0 <= pid < n:
            raise JaxdivError(
                f"process id {pid} must lie in [0, {n}) for {n} process(es) "
                f"(from {sources['process id']} and {sources['number of processes']})"
            )
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise JaxdivError(
                f"coordinator address {address!r} must be host:port, e.g. 10.0.0.2:12345 "
                f"(from {sources['coordinator address']})"
            )
        if n == 1:
            return Plan("single")
        return Plan("explicit", address, n, pid)
    if (
        "SLURM_JOB_ID" in env
        and _int(env.get("SLURM_NTASKS", "1"), "SLURM_NTASKS", "$SLURM_NTASKS") > 1
    ):
        if "SLURM_STEP_NODELIST" not in env or "SLURM_PROCID" not in env:
            raise JaxdivError(
                "SLURM job with several tasks but no job step: start the processes with "
                "`srun python -m jaxdiv train ...` in the sbatch script (launch/slurm.sbatch)"
            )
        return Plan("slurm")
    hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]
    if len(hosts) > 1 or (
        "TPU_ACCELERATOR_TYPE" in env
        and "TPU_WORKER_ID" in env
        and not hosts
        and _tpu_is_multi_host(env["TPU_ACCELERATOR_TYPE"])
    ):
        return Plan("tpu")
    if (
        _int(env.get("OMPI_COMM_WORLD_SIZE", "1"), "OMPI_COMM_WORLD_SIZE", "$OMPI_COMM_WORLD_SIZE")
        > 1
    ):
        return Plan("mpi")
    return Plan("single")


def _tpu_is_multi_host(accelerator_type: str) -> bool:
    """``v4-32`` (16 chips, 4 hosts) is multi-host; ``v4-8`` / ``v5litepod-8`` are one host."""
    try:
        cores = int(accelerator_type.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return False
    per_host = 8  # TensorCores (v2-v4) or chips (v5e, v6e) per host of the usual VM shapes
    return cores > per_host


def initialize(p: Plan | None = None, *, timeout_s: int = 300, **kwargs) -> Plan:
    """Join the job described by ``p`` (default ``plan(**kwargs)``); a no-op for one process
    or when JAX's distributed runtime is already up. Returns the plan used."""
    import jax

    p = p or plan(**kwargs)
    if not p.multi_process or jax.distributed.is_initialized():
        return p
    try:
        if p.kind == "explicit":
            jax.distributed.initialize(
                coordinator_address=p.coordinator_address,
                num_processes=p.num_processes,
                process_id=p.process_id,
                initialization_timeout=timeout_s,
            )
        else:
            jax.distributed.initialize(
                cluster_detection_method={"slurm": "slurm", "tpu": None, "mpi": None}[p.kind],
                initialization_timeout=timeout_s,
            )
    except RuntimeError as err:
        raise JaxdivError(
            f"could not join the multi-process job ({p.describe()}): {err}; check that every "
            "process was started with the same coordinator and that its port is reachable"
        ) from None
    return p
