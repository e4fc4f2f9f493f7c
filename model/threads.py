"""How many CPU threads torch uses in a training process: `train.threads: auto | N` in params.yaml.

WHY: torch starts one intra-op (OpenMP) thread per core. The threads of one operation wait for each
other at its end, so when another job holds one of the cores every step waits for a thread that is not
running: on a shared 2-core machine 100k rows took 9 min instead of 1. A small tabular MLP
gains little from a second thread even on a quiet machine (docs/large-data.md has both measurements),
so `auto` leaves half of the CPUs this process may use to whatever else runs (a CI runner's other steps,
a DDP sibling): half of them, split between the training processes of this machine, at least 1 and at
most MAX_AUTO. An explicit N is used as is. OMP_NUM_THREADS, when set, wins over `auto`: whoever set it
decided for the whole process.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from mlops.config.errors import UserError

MAX_AUTO = 8  # beyond this a small MLP's operations are too short to split further
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs this process may run on: its affinity mask, lowered by a cgroup v2 CPU quota (containers,
    CI runners), which os.cpu_count() ignores."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def resolve(setting, processes: int = 1, cpus: int | None = None) -> int:
    """The thread count for `train.threads` = setting, with `processes` training processes per machine."""
    if setting is None or str(setting).strip().lower() == "auto":
        from_env = os.environ.get("OMP_NUM_THREADS", "").strip()
        if from_env.isdigit() and int(from_env) > 0:
            return int(from_env)
        cpus = available_cpus() if cpus is None else cpus
        return max(1, min(MAX_AUTO, cpus // (2 * max(1, processes))))
    if isinstance(setting, bool) or not str(setting).strip().isdigit() or int(setting) < 1:
        raise UserError(f"params.yaml: train.threads must be 'auto' or a positive integer, got {setting!r}")
    return int(setting)


def local_processes(cfg) -> int:
    """Training processes on this machine: `train.devices` when it trains on the CPU, else 1 (a GPU
    process's threads only feed the GPU)."""
    if str(cfg.accelerator) != "cpu":
        return 1
    devices = cfg.devices
    if isinstance(devices, list):
        return max(1, len(devices))
    return int(devices) if str(devices).strip().isdigit() and int(devices) > 0 else 1


def use_threads(cfg) -> int:
    """Set torch's intra-op thread count from the `train:` section (mlops.config.sections.Train); returns
    it."""
    import torch

    threads = resolve(cfg.threads, local_processes(cfg))
    torch.set_num_threads(threads)
    return threads
