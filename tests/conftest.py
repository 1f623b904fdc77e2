"""Shared test helpers: run the real solver (serially or under mpirun) in a subprocess with a timeout.

No test skips for a missing component: an MPI, parallel HDF5, GNU parallel and SLURM are installed by
jobs/setup.sh, and a missing one is a failure that says how to install it. Nothing here assumes one MPI: the
tests run under Open MPI and (in CI, .ci/mpich) under MPICH.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# A small problem with an odd, prime-ish grid that no rank count divides evenly.
SMALL = {
    "grid": {"nx": 61, "ny": 45, "x": [0.0, 2.0], "y": [0.0, 1.0]},
    "physics": {"diffusivity": 0.0009},
    "initial": {"center": [1.0, 0.5], "sigma": 0.1, "amplitude": 1.0},
    "time": {"dt": 0.01, "t_end": 1.0},
    "output": {"path": "out.h5", "every": 25},
    "parallel": {"threads": 1},
}


# Settings that code run inside the test process writes into os.environ, where every later test's subprocess
# would inherit them: an ensemble member pins NUMBA_NUM_THREADS before numba starts (1 unless configured: a
# later 2-thread run would be refused), the planner sets OMP_WAIT_POLICY, MPI's start its yielding waits.
LEAKY_SETTINGS = ("NUMBA_NUM_THREADS", "OMP_WAIT_POLICY", "OMPI_MCA_mpi_yield_when_idle")


@pytest.fixture(autouse=True)
def _leaky_settings_undone(monkeypatch):
    """Each of LEAKY_SETTINGS as it was before the test, whatever code the test ran in this process."""
    for name in LEAKY_SETTINGS:
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)


def require(executable: str) -> str:
    """Path of a required program; a missing one fails the test with the fix."""
    path = shutil.which(executable)
    if path is None:
        pytest.fail(f"{executable} not found on PATH: run 'bash jobs/setup.sh' (installs it) and retry")
    return path


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """The line of a refused command: exit 2, one line on stderr holding every fragment, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def ensemble_of_two(tmp_path: Path, output: dict) -> Path:
    """Two numpy-kernel members of the small problem (initial.sigma drawn) with these output settings, run
    by the process pool in tmp_path/members, and their statistics by analysis/ensemble_stats.py: its file."""
    data = {**yaml.safe_load(yaml.safe_dump(SMALL)), "numerics": {"kernel": "numpy"}, "output": output,
            "ensemble": {"members": 2, "output_dir": str(tmp_path / "members"),
                         "perturb": {"initial.sigma": {"dist": "uniform", "low": 0.08, "high": 0.12}}}}
    config = tmp_path / "ensemble.yaml"
    config.write_text(yaml.safe_dump(data))
    run_solver("-m", "solver.pool", "1-2", "--config", config, "-j", "1", script=True, cwd=tmp_path)
    out = tmp_path / "stats.h5"
    run_solver(REPO / "analysis" / "ensemble_stats.py", "--config", config, "-o", out, "--no-plots", script=True,
               cwd=tmp_path)
    return out


# --- kernels: a model's problem on a small grid (tests/test_kernels.py, tests/test_kernels_unit.py) --------
def problem(name, ny, nx, seed=0):
    """The model, random fields (fields, ny, nx) for both buffers and coefficients at 80 % of the stable dt
    on a grid with dx != dy (so swapped axes would show)."""
    from solver import models
    model = models.load(name)
    rng = np.random.default_rng(seed)
    shape = (len(model.fields), ny, nx)
    physics, dx, dy = model.Physics(), 1.0, 0.8
    k = model.coefficients(physics, dx, dy, 0.8 * min(1.0, model.max_stable_dt(physics, dx, dy)))
    return model, rng.random(shape), rng.random(shape), k


def space_and_time(model, ny, nx, steps, first=0):
    """The coefficient fields (the model's own on the unit square, each node scaled by a random factor in
    0.95 .. 1.05, so that a coefficient read at a wrong node shows) and the forcing values of steps
    first .. first + steps - 1 (distinct every step, so that a step given another's values shows)."""
    from solver import models
    physics = model.Physics()
    x, y = np.linspace(0.0, 1.0, nx), np.linspace(0.0, 1.0, ny)
    rng = np.random.default_rng(42)
    a = models.coefficient_values(model, physics, x, y,
                                  lambda seed, low=0.0, high=1.0: rng.uniform(low, high, (ny, nx)))
    a = a * rng.uniform(0.95, 1.05, a.shape)
    return np.ascontiguousarray(a), models.time_values(model, physics, 0.0137, first, steps)


def solver_env(**extra: str) -> dict:
    """Environment for solver subprocesses: the test's Python first on PATH (as after activating the
    environment, so job scripts and pipes that say ``python`` get it), this checkout first on sys.path,
    Open MPI allowed as root and oversubscribed (the tests start more ranks than the machine has cores;
    MPICH's Hydra needs neither and ignores the variables)."""
    env = dict(os.environ)
    bin_dir = os.path.dirname(PYTHON)
    if os.path.exists(os.path.join(os.path.dirname(bin_dir), "pyvenv.cfg")):
        env["VIRTUAL_ENV"] = os.path.dirname(bin_dir)
    env.update(PATH=bin_dir + os.pathsep + env.get("PATH", ""),
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_solver(*args: str, ranks: int | None = None, cwd: Path | None = None, timeout: float = 180,
               env: dict | None = None, check: bool = True, script: bool = False) -> subprocess.CompletedProcess:
    """``python -m solver ARGS`` (``python ARGS`` with script=True: the first is a script's path), under
    ``mpirun -n RANKS`` when ranks is given; returns the process."""
    command = [PYTHON, *([] if script else ["-m", "solver"]), *map(str, args)]
    if ranks is not None:
        command = [require("mpirun"), "-n", str(ranks), "--bind-to", "none", *command]
    result = subprocess.run(command, cwd=cwd or REPO, env=env or solver_env(), capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


# The rank of a process as its launcher tells it: Open MPI; Hydra (MPICH, Intel MPI) and srun --mpi=pmi2; PMIx.
RANK_VARIABLES = (b"OMPI_COMM_WORLD_RANK", b"PMI_RANK", b"PMIX_RANK")


def rank_processes(launcher_pid: int) -> dict[int, int]:
    """MPI rank -> pid of the solver processes below a launcher (children or deeper descendants)."""
    ranks, todo = {}, [launcher_pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            todo.append(child)
            try:
                variables = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
                environ = dict(v.partition(b"=")[::2] for v in variables)
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            rank = next((environ[v] for v in RANK_VARIABLES if environ.get(v, b"").isdigit()), None)
            if b"solver" in cmdline and rank is not None:
                ranks[int(rank)] = child
    return ranks


def write_config(directory: Path, name: str = "small.yaml", base: dict | None = None, **sections) -> Path:
    """Write SMALL (or base) with sections updated, e.g. write_config(tmp, time={"t_end": 0.5})."""
    data = yaml.safe_load(yaml.safe_dump(base or SMALL))
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def small_config(tmp_path) -> Path:
    return write_config(tmp_path)


# --- SLURM: the cluster the tests submit to -----------------------------------------------------------------
LOCAL_CLUSTER = REPO / "tests" / "slurm" / "local-cluster.sh"
LOCAL_NODES = 2       # every SLURM test runs on the two-node local cluster: jobs cross nodes as on a real one


@pytest.fixture(scope="session")
def slurm_env():
    """Environment for sbatch, squeue and scontrol: the cluster that answers ``sinfo`` (a real one; jobs go to
    partition $SOLVER_TEST_PARTITION if set), else a private local two-node one started for the session and
    stopped after it. SLURM_CONF (and PATH, for its client wrappers) are set for the whole session when the
    local cluster is used."""
    env = solver_env()
    answers = shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], env=env, capture_output=True,
                                                       timeout=60).returncode == 0
    if answers:
        yield env
        return
    status = subprocess.run(["bash", LOCAL_CLUSTER, "status"], capture_output=True, text=True, timeout=60)
    running = status.returncode == 0 and status.stdout.startswith(f"{LOCAL_NODES} node")
    started = subprocess.run(["bash", LOCAL_CLUSTER, "start", "--nodes", str(LOCAL_NODES)], capture_output=True,
                             text=True, timeout=600)
    if started.returncode != 0:
        errors = [line for line in started.stderr.splitlines() if line.startswith("local-cluster: error:")]
        pytest.fail(f"no SLURM cluster answers sinfo and '{LOCAL_CLUSTER.name} start --nodes {LOCAL_NODES}' "
                    f"failed: {errors[-1] if errors else started.stderr}", pytrace=False)
    exported = dict(re.findall(r"^export (\w+)=(\S+)$", started.stdout, re.M))
    bin_dir = exported.get("PATH", "").removesuffix(":$PATH")
    previous = {name: os.environ.get(name) for name in ("SLURM_CONF", "PATH")}
    os.environ["SLURM_CONF"] = env["SLURM_CONF"] = exported["SLURM_CONF"]
    if bin_dir:               # the two-node cluster's client wrappers (see local-cluster.sh)
        os.environ["PATH"] = env["PATH"] = bin_dir + os.pathsep + env["PATH"]
    try:
        yield env
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if not running:       # stop only what this session started
            subprocess.run(["bash", LOCAL_CLUSTER, "stop"], capture_output=True, timeout=120)
