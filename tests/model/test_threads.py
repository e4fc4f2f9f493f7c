"""`train.threads`: what `auto` resolves to from the CPUs a process may use, and that torch gets it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from mlops.config.errors import UserError
from mlops.config.sections import Train
from model.threads import MAX_AUTO, available_cpus, local_processes, resolve, use_threads
from tests.repo import ROOT


@pytest.fixture(autouse=True)
def no_omp_env(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("cpus", "processes", "expected"),
    [(1, 1, 1), (2, 1, 1), (4, 1, 2), (16, 1, 8), (64, 1, MAX_AUTO), (8, 2, 2), (2, 2, 1)],
)
def test_auto_is_half_the_cpus_split_between_processes(cpus, processes, expected):
    assert resolve("auto", processes, cpus=cpus) == expected
    assert resolve(None, processes, cpus=cpus) == expected


def test_an_explicit_count_is_used_as_is():
    assert resolve(3, cpus=2) == 3 and resolve("12", cpus=2) == 12


def test_omp_num_threads_wins_over_auto_only(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve("auto", cpus=16) == 3
    assert resolve(1, cpus=16) == 1


@pytest.mark.parametrize("bad", [0, -1, "many", True, 1.5])
def test_a_bad_value_names_the_key(bad):
    with pytest.raises(UserError, match=r"train.threads must be 'auto' or a positive integer"):
        resolve(bad)


def test_available_cpus_follows_the_affinity_mask():
    """A process pinned to one CPU (as `taskset` or a container would) sees one CPU, whatever the machine."""
    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "from model.threads import available_cpus, resolve; print(available_cpus(), resolve('auto'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["1", "1"], out.stderr


def test_available_cpus_is_lowered_by_a_cgroup_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # 1.5 CPUs of time: 2 threads can use it
    assert available_cpus(quota) == min(affinity, 2)
    quota.write_text("max 100000\n")
    assert available_cpus(quota) == affinity
    assert available_cpus(tmp_path / "absent") == affinity


def test_local_processes_counts_cpu_ranks_only():
    assert local_processes(Train()) == 1
    assert local_processes(Train(accelerator="cpu", devices=2, strategy="ddp")) == 2
    assert local_processes(Train(accelerator="cpu", devices="auto")) == 1
    assert local_processes(Train(accelerator="gpu", devices=4)) == 1


def test_use_threads_sets_torchs_thread_count(restore_threads):
    torch.set_num_threads(2)
    assert use_threads(Train(threads=1)) == 1 and torch.get_num_threads() == 1
    assert use_threads(Train(threads=3)) == 3 and torch.get_num_threads() == 3
    auto = use_threads(Train())
    assert auto == resolve("auto") and torch.get_num_threads() == auto
