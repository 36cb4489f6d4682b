"""Images/s of jaxdiv's ResNet-20 train step against the same network in PyTorch (CPU).

    python benchmarks/train_throughput.py [--steps=10] [--rounds=5] [--variants=all]

jaxdiv: the trainer's real step (``loop.make_train_step``) built from
``configs/cifar10_supervised.py`` (ResNet-20, batch 128, SGD momentum 0.9 Nesterov, weight
decay 5e-4 on kernels, cosine schedule), fed real CIFAR-10 uint8 batches through
``TrainLoader`` + ``shard_batch`` as ``train`` does. The step includes the on-device
pad-4/crop/flip/normalise augmentation, the forward and backward passes, BatchNorm statistics
updates and the optimiser update.

PyTorch baseline: the same architecture (widths 16/32/64, 3x3 BasicBlocks, post-activation,
1x1 strided conv + BN projection shortcuts, BN eps 1e-5 momentum 0.1, 64->10 linear head,
same He fan-out init), the same uint8 batches and the same per-example pad/crop/flip/normalise
done with vectorised tensor ops inside the timed step, cross-entropy, accuracy, and
``torch.optim.SGD(momentum=0.9, nesterov=True)`` with weight decay 5e-4 on kernels only.
Run twice: default (NCHW contiguous) and channels-last tensors.

Each contender runs in its own worker process (so peak RSS is its own) and the workers take
turns: every round times ``--steps`` steps of each, so load from other jobs on a shared
machine hits all of them alike. Prints per-round images/s, the median over rounds, the
ratio jaxdiv/PyTorch per round (median), compile/warm-up time and peak RSS per worker.
``--variants=all`` adds jaxdiv variants (XLA flags, bfloat16) to the rotation.

Read the numbers with the load average printed beside them: when other jobs oversubscribe the
cores, PyTorch's OpenMP threads (which spin at barriers) lose far more wall time than XLA's
thread pool, and the wall-clock ratio then flatters jaxdiv. Images per CPU-second and
``--cpus=1`` (one thread each, pinned) are steadier under load; on an idle machine the
wall-clock ratio at full threads is the one that counts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BATCH = 128
NUM_POOL = 8  # distinct batches cycled through (real CIFAR-10 images)

# jaxdiv variants: name -> (XLA_FLAGS to set, config overrides). "jaxdiv" is jaxdiv as
# shipped: jaxdiv.xla_defaults moves XLA:CPU's convolutions from YNNPACK to Eigen unless
# XLA_FLAGS sets the YNN flag itself; "jaxdiv_xla_default" keeps XLA's own default (YNNPACK).
YNN = "--xla_cpu_experimental_ynn_fusion_type="
BF16 = {"compute_dtype": "bfloat16"}
JAX_VARIANTS: dict[str, tuple[str, dict]] = {
    "jaxdiv": ("", {}),
    "jaxdiv_xla_default": (YNN + "+individual_convolution", {}),
    "jaxdiv_no_ynn": (YNN, {}),
    "jaxdiv_onednn": (
        "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
        {},
    ),
    "jaxdiv_fast_math": ("--xla_cpu_enable_fast_math=true", {}),
    "jaxdiv_eigen_1thread": ("--xla_cpu_multi_thread_eigen=false", {}),
    "jaxdiv_bf16": ("", BF16),
    "jaxdiv_no_ynn_bf16": (YNN, BF16),
}
TORCH_VARIANTS = {"torch": False, "torch_channels_last": True}
DEFAULT_WORKERS = ("jaxdiv", "torch", "torch_channels_last")


def _num_threads() -> int:
    return len(os.sched_getaffinity(0))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _config():
    sys.path.insert(0, str(ROOT))
    from configs.cifar10_supervised import get_config

    c = get_config()
    c.batch_size = BATCH
    return c


def _send(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- jaxdiv worker
def _jax_worker(name: str) -> None:
    flags, overrides = JAX_VARIANTS[name]
    if flags:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    import jax

    from jaxdiv.data.loader import TrainLoader
    from jaxdiv.train import loop
    from jaxdiv.train.mesh import shard_batch

    config = _config()
    for key, value in overrides.items():
        config[key] = value
    t0 = time.perf_counter()
    setup = loop.build_setup(config)
    rss_data = _rss_mb()
    state = loop.init_state(setup, jax.random.PRNGKey(0))
    step = loop.make_train_step(setup)
    loader = TrainLoader(setup.train_split, BATCH, seed=0)
    pool = [loader.batch(i) for i in range(NUM_POOL)]
    key = jax.random.PRNGKey(1)
    i = 0

    def run(n: int) -> None:
        nonlocal state, i
        for _ in range(n):
            batch = shard_batch(pool[i % NUM_POOL], setup.mesh)
            state, metrics = step(state, batch, key)
            i += 1
        jax.block_until_ready((state, metrics))

    run(1)
    compile_s = time.perf_counter() - t0
    run(2)
    _serve(
        run,
        {
            "compile_s": compile_s,
            "rss_after_data_mb": rss_data,
            "threads": _num_threads(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        },
    )


# ------------------------------------------------------------------------------ torch worker
def _torch_model(num_classes: int = 10):
    import torch
    from torch import nn

    def conv(cin, cout, k, stride):
        c = nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)
        nn.init.kaiming_normal_(c.weight, mode="fan_out", nonlinearity="relu")
        return c

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1, self.bn1 = conv(cin, cout, 3, stride), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = conv(cout, cout, 3, 1), nn.BatchNorm2d(cout)
            self.proj = None
            if stride != 1 or cin != cout:  # option B, as jaxdiv's resnet
                self.proj = nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.proj is None else self.proj(x)))

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.bn = conv(3, 16, 3, 1), nn.BatchNorm2d(16)
            blocks, cin = [], 16
            for stage, cout in enumerate((16, 32, 64)):
                for b in range(3):
                    blocks.append(Block(cin, cout, 2 if stage > 0 and b == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.head = nn.Linear(64, num_classes)

        def forward(self, x):
            x = self.blocks(torch.relu(self.bn(self.stem(x))))
            return self.head(x.mean((2, 3)))

    return ResNet20()


def _torch_worker(name: str) -> None:
    import torch
    import torch.nn.functional as F

    from jaxdiv.data.augment import CIFAR10_MEAN, CIFAR10_STD
    from jaxdiv.data.datasets import load_split

    channels_last = TORCH_VARIANTS[name]
    torch.set_num_threads(_num_threads())
    torch.manual_seed(0)
    config = _config()
    t0 = time.perf_counter()
    split = load_split(config.data.dataset, config.data.train_split, config.data.get("data_dir"))
    rss_data = _rss_mb()
    rng = np.random.default_rng(0)
    pool = []
    for _ in range(NUM_POOL):
        idx = rng.choice(len(split), BATCH, replace=False)
        pool.append(
            (
                torch.from_numpy(split.images[idx]),
                torch.from_numpy(split.labels[idx].astype(np.int64)),
            )
        )
    model = _torch_model(split.num_classes)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=0.1,
        momentum=0.9,
        nesterov=True,
    )
    mean = torch.tensor(CIFAR10_MEAN).view(1, 1, 1, 3)
    std = torch.tensor(CIFAR10_STD).view(1, 1, 1, 3)
    pad, h, w = 4, 32, 32
    gen = torch.Generator().manual_seed(0)
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    b_idx = torch.arange(BATCH).view(-1, 1, 1)

    def augment(images):
        """uint8 NHWC -> pad 4 (zeros), random crop, random flip, normalise -> float NCHW."""
        x = F.pad(images, (0, 0, pad, pad, pad, pad))
        off = torch.randint(0, 2 * pad + 1, (BATCH, 2), generator=gen)
        flip = torch.rand(BATCH, generator=gen) < 0.5
        rows = off[:, :1] + ar_h
        cols = torch.where(flip[:, None], ar_w.flip(0), ar_w) + off[:, 1:]
        x = x[b_idx, rows[:, :, None], cols[:, None, :]]
        x = (x.float() / 255.0 - mean) / std
        return x.permute(0, 3, 1, 2).contiguous(memory_format=fmt)

    model.train()
    i = 0

    def run(n: int) -> None:
        nonlocal i
        for _ in range(n):
            images, labels = pool[i % NUM_POOL]
            i += 1
            opt.zero_grad(set_to_none=True)
            logits = model(augment(images))
            loss = F.cross_entropy(logits, labels)
            loss.backward()
            opt.step()
            _ = (loss.detach(), (logits.argmax(-1) == labels).float().mean())

    run(3)
    _serve(
        run,
        {
            "compile_s": time.perf_counter() - t0,
            "rss_after_data_mb": rss_data,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
    )


# ------------------------------------------------------------------------- worker protocol
def _serve(run, info: dict) -> None:
    """Answer ``run N`` with the seconds N steps took, ``stats`` with memory, ``quit``."""
    _send({"ready": True, **info})
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "run":
            t, c = time.perf_counter(), time.process_time()
            run(int(cmd[1]))
            _send({"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c})
        elif cmd[0] == "stats":
            _send({"peak_rss_mb": _peak_mb(), "rss_mb": _rss_mb()})
        elif cmd[0] == "quit":
            return


@dataclass
class Worker:
    """A contender in its own process, driven line by line over pipes."""

    name: str
    cpus: int
    proc: subprocess.Popen = field(init=False)
    info: dict = field(init=False)

    def __post_init__(self):
        env = dict(os.environ)
        env.setdefault("TFDS_DATA_DIR", str(ROOT.parent / "shared" / "tensorflow_datasets"))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", self.name, f"--cpus={self.cpus}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.info = self._read()

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.name} exited with {self.proc.wait()}")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait()


def _ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps per worker per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--cpus",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="pin each worker to this many of our CPUs (threads = CPUs)",
    )
    p.add_argument(
        "--variants",
        default="",
        help="comma-separated extra workers (or 'all'): "
        + ", ".join(n for n in JAX_VARIANTS if n not in DEFAULT_WORKERS),
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])
        if args.worker in JAX_VARIANTS:
            _jax_worker(args.worker)
        else:
            _torch_worker(args.worker)
        return

    extra = (
        [n for n in JAX_VARIANTS if n not in DEFAULT_WORKERS]
        if args.variants == "all"
        else [v for v in args.variants.split(",") if v]
    )
    names = list(DEFAULT_WORKERS) + [n for n in extra if n not in DEFAULT_WORKERS]
    unknown = [n for n in names if n not in JAX_VARIANTS and n not in TORCH_VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; valid: {', '.join(JAX_VARIANTS)}")
    print(
        f"ResNet-20, batch {BATCH}, {args.cpus} CPU(s) per worker, {args.rounds} rounds x "
        f"{args.steps} steps; workers: {', '.join(names)}; load average "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    workers = []
    for n in names:  # started one at a time so compilations do not overlap
        workers.append(Worker(n, args.cpus))
        print(f"  started {n}: {workers[-1].info}", flush=True)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for wk in workers:
            t = wk.ask(f"run {args.steps}")
            wall[wk.name].append(args.steps * BATCH / t["seconds"])
            cpu[wk.name].append(args.steps * BATCH / t["cpu_seconds"])
        print(
            f"round {r + 1} img/s: " + "  ".join(f"{n} {v[-1]:.0f}" for n, v in wall.items()),
            flush=True,
        )
    stats = {wk.name: wk.ask("stats") for wk in workers}
    for wk in workers:
        wk.close()

    print(
        f"\n{'worker':<24}{'img/s median':>13}{'best':>8}{'img/CPU-s':>11}"
        f"{'peak RSS MB':>13}{'startup s':>11}"
    )
    for wk in workers:
        n = wk.name
        print(
            f"{n:<24}{statistics.median(wall[n]):>13.1f}{max(wall[n]):>8.1f}"
            f"{statistics.median(cpu[n]):>11.1f}{stats[n]['peak_rss_mb']:>13.0f}"
            f"{wk.info['compile_s']:>11.1f}"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")
    print("\nratios, median over rounds of same-round ratios (wall img/s; img per CPU-second):")
    pairs = [(n, b) for b in TORCH_VARIANTS for n in names if n in JAX_VARIANTS]
    pairs += [(n, "jaxdiv") for n in names if n in JAX_VARIANTS and n != "jaxdiv"]
    for n, b in pairs:
        print(f"  {n} / {b}: {_ratio(wall[n], wall[b]):.3f}; {_ratio(cpu[n], cpu[b]):.3f}")


if __name__ == "__main__":
    main()
