#!/usr/bin/env python3
"""Start N processes of one jaxdiv command on this machine as one multi-process JAX job.

    python launch/local.py --num_processes=2 --cpu_devices_per_process=2 -- \\
        python -m jaxdiv train --config=configs/cifar10_supervised.py:quick --workdir=runs/mp

Process ``i`` gets ``JAXDIV_COORDINATOR_ADDRESS=127.0.0.1:<port>``, ``JAXDIV_NUM_PROCESSES=N``
and ``JAXDIV_PROCESS_ID=i`` (read by ``jaxdiv.distributed``), plus, with
``--cpu_devices_per_process=D``, ``JAX_PLATFORMS=cpu`` and D simulated CPU devices (to rehearse a
multi-host run on a laptop), or with ``--gpus_per_process=G`` its own ``CUDA_VISIBLE_DEVICES``
(one process per GPU group on a multi-GPU machine). Output lines are prefixed with ``[i]``.
If any process fails the others are stopped; the exit status is the first failure's.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(
    base: dict, i: int, n: int, port: int, cpu_devices: int | None, gpus: int | None
) -> dict:
    env = dict(base)
    env.update(
        {
            "JAXDIV_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAXDIV_NUM_PROCESSES": str(n),
            "JAXDIV_PROCESS_ID": str(i),
        }
    )
    if cpu_devices:
        env["JAX_PLATFORMS"] = "cpu"
        flags = [
            f
            for f in env.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")
        ]
        env["XLA_FLAGS"] = " ".join(
            flags + [f"--xla_force_host_platform_device_count={cpu_devices}"]
        )
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i * gpus + g) for g in range(gpus))
    return env


def _pump(stream, prefix: str, out) -> None:
    for line in iter(stream.readline, ""):
        out.write(f"{prefix}{line}")
        out.flush()
    stream.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("usage: launch/local.py [options] -- COMMAND ...", file=sys.stderr)
        return 2
    cut = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_processes", type=int, default=2)
    parser.add_argument("--cpu_devices_per_process", type=int, default=None)
    parser.add_argument("--gpus_per_process", type=int, default=None)
    parser.add_argument("--port", type=int, default=0, help="coordinator port (0: a free one)")
    args = parser.parse_args(argv[:cut])
    command = argv[cut + 1 :]
    if not command:
        parser.error("no command after --")
    if args.num_processes < 1:
        parser.error("--num_processes must be >= 1")
    port = args.port or free_port()
    procs = []
    threads = []
    for i in range(args.num_processes):
        env = process_env(
            os.environ,
            i,
            args.num_processes,
            port,
            args.cpu_devices_per_process,
            args.gpus_per_process,
        )
        p = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        procs.append(p)
        t = threading.Thread(target=_pump, args=(p.stdout, f"[{i}] ", sys.stdout), daemon=True)
        t.start()
        threads.append(t)
    status = 0
    try:
        remaining = set(range(len(procs)))
        while remaining:
            for i in sorted(remaining):
                try:
                    rc = procs[i].wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    continue
                remaining.discard(i)
                if rc != 0 and status == 0:
                    status = rc
                    print(
                        f"[launch] process {i} exited with status {rc}; stopping the others",
                        file=sys.stderr,
                    )
                    for j in remaining:
                        procs[j].send_signal(signal.SIGTERM)
    except KeyboardInterrupt:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        status = 130
    for p in procs:
        p.wait()
    for t in threads:
        t.join(timeout=5)
    return status


if __name__ == "__main__":
    sys.exit(main())
