"""The job scripts across two SLURM nodes (the local cluster of tests/slurm/local-cluster.sh starts two, each in
its own network namespace, so MPI really goes over TCP between hosts): MPI runs with srun and mpirun, one and
two ranks per node, bit-for-bit the serial field, every rank's host in the provenance; an ensemble spread over
both nodes and resumed from its joblog; a node failing mid-run and the job requeued onto the other node; a
checkpoint of 2 nodes x 2 ranks resumed on 1 node x 3 ranks.

Moments "mid-run" are events, not sleeps: SOLVER_HOLD_AT holds a rank at a step until the test acts."""
from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_solver, write_config
from test_slurm import ENSEMBLE, attrs_of, field_of, job_field, read, release, script, submit, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.multinode]

FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL")
# 100 steps, a snapshot every 25 and a checkpoint every 20: a run held at step 50 has one at step 40.
LONG = {"time": {"dt": 0.01, "t_end": 1.0}, "checkpoint": {"every": 20}}


@pytest.fixture(scope="module")
def nodes(slurm_env) -> list[str]:
    """The names of two nodes that answer (a cluster of one node fails here, with what to do)."""
    listed = subprocess.run(["sinfo", "-h", "-N", "-t", "idle,mixed,allocated", "-o", "%N"], env=slurm_env,
                            capture_output=True, text=True, timeout=30).stdout.split()
    names = sorted(set(listed))
    if len(names) < 2:
        pytest.fail(f"the multinode tests need two SLURM nodes, the cluster has {names}: use "
                    "'bash tests/slurm/local-cluster.sh start --nodes 2' or a partition of two nodes")
    return names[:2]


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> np.ndarray:
    """The field of the serial run of LONG, which every multi-node run must reproduce bit for bit."""
    directory = tmp_path_factory.mktemp("serial")
    config = write_config(directory, **LONG)
    run_solver("run", config, "-o", directory / "serial.h5")
    return field_of(directory / "serial.h5")


def run_job(env: dict, tmp_path: Path, *args, extra_env: dict | None = None, timeout: float = 120):
    """Submit, poll until the job ends (sbatch --wait polls with a back-off of up to 10 s); returns (job, log,
    seconds from submission to the end). A job that does not complete fails the test with its log."""
    started = time.monotonic()
    job, log = submit(env, tmp_path, *args, wait=False, extra_env=extra_env)
    wait_for(env, job, log, lambda: job_field(env, job, "JobState") in FINISHED, "the end", timeout)
    seconds = time.monotonic() - started
    assert job_field(env, job, "JobState") == "COMPLETED", read(log)
    options = " ".join(str(a) for a in args if str(a).startswith("--"))
    print(f"job {job} ({options}): {seconds:.1f} s from submission to the end")
    return job, log, seconds


def node_list(env: dict, job: str) -> list[str]:
    nodelist = job_field(env, job, "NodeList")
    return subprocess.run(["scontrol", "show", "hostnames", nodelist], env=env, capture_output=True, text=True,
                          timeout=30).stdout.split()


def solver_processes(env: dict, job: str, node: str) -> list[int]:
    """Pids of the job's solver processes on one node of the local cluster (its nodes are this machine's
    namespaces): the job's by the SLURM_JOB_ID in their environment, the node's by its network namespace, that
    of the node's slurmd. Not by SLURMD_NODENAME: MPICH's Hydra gives every rank the batch shell's variables."""
    pid_file = Path(env.get("SLURM_CONF", "/nonexistent")).parent / f"slurmd.{node}.pid"
    try:
        netns = os.readlink(f"/proc/{pid_file.read_text().strip()}/ns/net")
    except (OSError, ValueError):
        pytest.fail(f"no slurmd of node {node} at {pid_file}: killing a node's ranks needs the local cluster "
                    "(tests/slurm/local-cluster.sh)")
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            here = os.readlink(entry / "ns" / "net") == netns
        except (OSError, ValueError):
            continue
        if here and f"SLURM_JOB_ID={job}".encode() in environ and b"solver" in cmdline and b"-m" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.mpi
@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
@pytest.mark.parametrize("per_node, cpus", [(1, 2), (2, 1)], ids=["1x2threads", "2x1thread"])
def test_mpi_job_across_two_nodes(slurm_env, nodes, serial, tmp_path, launcher, per_node, cpus):
    """sbatch --nodes=2 jobs/mpi2d.slurm: the serial bits, and the provenance says where every rank ran, how
    many ranks it counted on its node and how many threads it ran (--cpus-per-task on each node)."""
    config = write_config(tmp_path, **LONG, parallel={"threads": "auto"})
    out = tmp_path / "mpi.h5"
    ranks = 2 * per_node
    job, log, _ = run_job(slurm_env, tmp_path, "--nodes=2", f"--ntasks={ranks}", f"--ntasks-per-node={per_node}",
                          f"--cpus-per-task={cpus}", script("mpi2d.slurm"), config, "-o", out,
                          extra_env={"LAUNCHER": launcher})
    attrs = attrs_of(out)
    assert f"launch: {launcher}" in read(log)
    assert np.array_equal(field_of(out), serial)
    hosts = attrs["hosts"].split()
    assert len(hosts) == ranks and sorted(set(hosts)) == sorted(node_list(slurm_env, job)), attrs["hosts"]
    assert set(collections.Counter(hosts).values()) == {per_node}, attrs["hosts"]
    assert attrs["ranks_on_node"] == [per_node] * ranks and attrs["rank_threads"] == [cpus] * ranks, attrs
    assert attrs["threads_per_rank"] == cpus and int(np.prod(attrs["process_grid"])) == ranks
    shown = run_solver("info", out).stdout
    assert all(f"{host}: rank" in shown for host in set(hosts)), shown


def test_ensemble_across_two_nodes(slurm_env, nodes, tmp_path):
    """jobs/ensemble.slurm with one task on each node: members run on both (their host attribute), every
    member file is complete, and a rerun starts only what the joblog does not list as done."""
    members = tmp_path / "members"
    config = write_config(tmp_path, base=ENSEMBLE, ensemble={"output_dir": str(members)})
    options = ["--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--cpus-per-task=1", script("ensemble.slurm"), 1, 4]
    extra = {"ENSEMBLE_CONFIG": str(config)}
    run_job(slurm_env, tmp_path, *options, extra_env=extra)
    files = [members / f"member-{m:04d}.h5" for m in range(1, 5)]
    attrs = [attrs_of(path) for path in files]
    assert all(a["complete"] == 1 for a in attrs)
    assert {a["host"] for a in attrs} == set(nodes), [a["host"] for a in attrs]

    # Member 3 as if it never ran: no file, no joblog line. The rerun starts it alone.
    joblog = members / "joblog-0001-0004.tsv"
    lines = joblog.read_text().splitlines(keepends=True)
    joblog.write_text("".join(line for line in lines if line.split("\t")[0] != "3"))
    files[2].unlink()
    before = {path: path.stat().st_mtime_ns for path in files if path.exists()}
    run_job(slurm_env, tmp_path, *options, extra_env=extra)
    assert attrs_of(files[2])["complete"] == 1
    assert {path: path.stat().st_mtime_ns for path in before} == before, "finished members ran again"
    rows = [line.split("\t") for line in joblog.read_text().splitlines()[1:]]
    assert sorted(row[0] for row in rows) == ["1", "2", "3", "4"], joblog.read_text()


@contextlib.contextmanager
def cancelled_on_failure(env: dict, job: str):
    """Cancel the job if the test fails inside the block."""
    try:
        yield
    except BaseException:
        subprocess.run(["scancel", job], env=env, timeout=30)
        raise


@pytest.mark.mpi
@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_node_failure_then_requeue(slurm_env, nodes, serial, tmp_path, launcher):
    """2 nodes x 2 ranks; rank 3 (second node) held at step 50, after the checkpoint at step 40; then every
    solver process of the second node is killed. The job ends within 30 s with no complete-looking output;
    requeued (the node is back), it resumes from step 40 and ends with the serial bits. (Resuming on fewer
    nodes: the next test.)"""
    config = write_config(tmp_path, **LONG)
    out = tmp_path / "fail.h5"
    job, log = submit(slurm_env, tmp_path, "--nodes=2", "--ntasks=4", "--ntasks-per-node=2", "--cpus-per-task=1",
                      script("mpi2d.slurm"), config, "-o", out, wait=False,
                      extra_env={"SOLVER_HOLD_AT": "3:50", "LAUNCHER": launcher})
    with cancelled_on_failure(slurm_env, job):   # a held rank would keep the nodes from the next tests
        wait_for(slurm_env, job, log, lambda: "rank 3 held at step" in read(log), "rank 3 holding")
        first, second = node_list(slurm_env, job)
        pids = solver_processes(slurm_env, job, second)
        assert len(pids) == 2, f"expected the 2 solver ranks of job {job} on {second}, found pids {pids}"
        killed = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        wait_for(slurm_env, job, log, lambda: job_field(slurm_env, job, "JobState") in FINISHED, "the end", 60)
        ended = time.monotonic() - killed
        assert ended < 30, f"job {job} took {ended:.0f} s to end after the node's processes were killed"
        assert job_field(slurm_env, job, "JobState") != "COMPLETED", read(log)
        assert not out.exists() and Path(f"{out}.partial").exists(), read(log)
        assert (tmp_path / "fail.ckpt.h5").is_file(), read(log)
        print(f"job {job}: ended {ended:.1f} s after its ranks on {second} were killed")

        subprocess.run(["scontrol", "requeue", job], env=slurm_env, check=True, timeout=30)
        release(slurm_env, job)
        # The requeued run resumes at step 40 and rank 3 holds at step 50 again: let it go on this time.
        wait_for(slurm_env, job, log, lambda: read(log).count("rank 3 held at step") == 2,
                 "the requeued run's hold")
        for pid in solver_processes(slurm_env, job, second):
            os.kill(pid, signal.SIGCONT)
        wait_for(slurm_env, job, log, lambda: job_field(slurm_env, job, "JobState") in FINISHED,
                 "the requeued run's end")
        assert job_field(slurm_env, job, "JobState") == "COMPLETED", read(log)
        attrs = attrs_of(out)
        assert attrs["restarted_from_step"] == 40 and attrs["slurm_restart_count"] == "1", attrs
    assert np.array_equal(field_of(out), serial)


@pytest.mark.mpi
def test_checkpoint_of_two_nodes_resumes_on_one_node_with_three_ranks(slurm_env, nodes, serial, tmp_path):
    """A checkpoint written by 2 nodes x 2 ranks (--max-steps, in a job that may not requeue, so it ends
    there), resumed by a job of 1 node x 3 ranks: the serial bits."""
    config = write_config(tmp_path, **LONG)
    out = tmp_path / "moved.h5"
    job, log = submit(slurm_env, tmp_path, "--nodes=2", "--ntasks=4", "--ntasks-per-node=2", "--cpus-per-task=1",
                      "--no-requeue", script("mpi2d.slurm"), config, "-o", out, "--max-steps", 40, wait=False)
    wait_for(slurm_env, job, log, lambda: job_field(slurm_env, job, "JobState") in FINISHED, "the end")
    assert (tmp_path / "moved.ckpt.h5").is_file() and not out.exists(), read(log)
    assert len(set(node_list(slurm_env, job))) == 2
    run_job(slurm_env, tmp_path, "--nodes=1", "--ntasks=3", "--cpus-per-task=1", script("mpi2d.slurm"), config,
            "-o", out)
    attrs = attrs_of(out)
    assert attrs["restarted_from_step"] == 40 and attrs["ranks"] == 3 and len(set(attrs["hosts"].split())) == 1
    assert np.array_equal(field_of(out), serial)
