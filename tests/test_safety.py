"""solver/safety.py and solver/storage/files.py on their own: the memory a job may use, read from a cgroup v2 or v1
tree or /proc/meminfo (fake trees here, as SLURM's --mem sets them up), and what kind() says of files."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest

from solver import machine as safety
from solver.storage import files


def tree(root: Path, entries: dict[str, str]) -> Path:
    for name, text in entries.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


MEMINFO = "MemTotal:       32000000 kB\nMemAvailable:   16000000 kB\n"


@pytest.mark.parametrize("entries, expected", [
    ({"proc/self/cgroup": "0::/slurm/uid_0/job_7/step_0\n",
      "sys/fs/cgroup/slurm/uid_0/job_7/step_0/memory.max": "1073741824\n", "proc/meminfo": MEMINFO},
     (2 ** 30, "cgroup")),                                                          # v2, --mem=1G
    ({"proc/self/cgroup": "12:memory:/slurm/uid_0/job_7\n3:cpu,cpuacct:/slurm/uid_0/job_7\n",
      "sys/fs/cgroup/memory/slurm/uid_0/job_7/memory.limit_in_bytes": "2147483648\n", "proc/meminfo": MEMINFO},
     (2 * 2 ** 30, "cgroup")),                                                      # v1, --mem=2G
    ({"proc/self/cgroup": "0::/user.slice\n", "sys/fs/cgroup/user.slice/memory.max": "max\n",
      "proc/meminfo": MEMINFO}, (16000000 * 1024, "available")),                    # no limit: what is free
    ({"proc/self/cgroup": "12:memory:/\n", "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
      "proc/meminfo": MEMINFO}, (16000000 * 1024, "available")),                    # v1 "unlimited"
    ({"proc/self/cgroup": "0::/job\n", "sys/fs/cgroup/job/memory.max": "68719476736\n", "proc/meminfo": MEMINFO},
     (16000000 * 1024, "available")),                                              # the smaller of the two
    ({}, (None, "")),
])
def test_memory_limit_from_cgroup_v2_v1_or_meminfo(tmp_path, monkeypatch, entries, expected):
    monkeypatch.delenv("SOLVER_MEMORY_LIMIT", raising=False)
    limit, where = safety.memory_limit(str(tree(tmp_path, entries)) + os.sep)
    assert limit == expected[0] and expected[1] in where


def test_kind_reads_content_never_names(tmp_path):
    (tmp_path / "out.h5").write_text("grid: {}\n")              # a name says nothing
    os.mkfifo(tmp_path / "fifo.h5")
    (tmp_path / "link.h5").symlink_to("out.h5")
    with h5py.File(tmp_path / "ckpt.yaml", "w") as f:
        f.attrs["format"] = files.CHECKPOINT_FORMAT
    assert files.kind(str(tmp_path / "out.h5")) == "a text file"
    assert files.kind(str(tmp_path / "fifo.h5")) == "a FIFO"
    assert files.kind(str(tmp_path / "link.h5")) == files.SYMLINK
    assert files.kind(str(tmp_path / "ckpt.yaml")) == files.CHECKPOINT
    assert files.kind(str(tmp_path / "none.h5")) == files.MISSING
    assert files.kind(str(tmp_path)) == files.DIRECTORY
    assert files.kind("/dev/null") == "a device"
