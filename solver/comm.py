"""The communicator seam: MPI's COMM_WORLD under a launcher, else a one-rank stand-in with the same methods.

Serial is the one-rank case, not a branch: a run, a checkpoint, the output and the provenance talk to a
communicator and never ask whether there is MPI. mpi4py is imported here and nowhere else (:func:`mpi`),
and only when a launcher started the process: a plain run and an ensemble member never import it.

The few verbs the rest of the package uses beyond mpi4py's own methods:

- :func:`world`: the communicator of this process;
- :func:`maximum`, :func:`any_true`, :func:`all_true`: reductions that cost nothing on one rank;
- :func:`sum_and_max`: sums and maxima of arrays in one reduction (the output's per-step series);
- :func:`on_root`: rank 0 checks (the file system, say), every rank raises the same UserError;
- :func:`ranks_on_node`: how many ranks share this node;
- :func:`abort` and :func:`end_together`: end a job that failed on one rank, or on all, with the rank's one line
  as the only output;
- :func:`watch_launcher`: end this rank when its launcher is gone (mpirun killed by a hard time limit).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from .errors import ConfigError, UserError

MPI_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS")
MPI_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")    # Open MPI; Hydra (MPICH, Intel MPI), srun PMI-1/2
MPI_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")      # Open MPI; Hydra, srun; PMIx
MPI_LOCAL_SIZE_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE")


class SerialComm:
    """A communicator of one rank: what a process started without an MPI launcher talks to."""

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def allreduce(self, obj: Any, op: Any = None) -> Any:
        return obj

    def allgather(self, obj: Any) -> list:
        return [obj]

    def Barrier(self) -> None:
        pass

    def Abort(self, code: int = 1) -> None:
        os._exit(code)


SERIAL = SerialComm()


def mpi():
    """mpi4py's ``MPI`` module (initialises MPI): the package's one import of mpi4py."""
    yielding_waits()
    from mpi4py import MPI
    return MPI


def yielding_waits(environ=os.environ) -> None:
    """Let Open MPI's waits yield the core (``OMPI_MCA_mpi_yield_when_idle=1`` unless set; read at MPI's
    start): a rank waiting in an exchange otherwise polls, and when another process shares the cores it takes
    the time the rank it waits for needs. 2 ranks x 1 thread on configs/default.yaml with other work on the
    machine (load 3.8-4.6): 465-613 MLUPS yielding against 313-375 polling, the exchanges 1.5-1.9 s against
    3.5-4.9 s (docs/performance.md). Other MPIs ignore the variable."""
    environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")


def is_digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits (``str.isdigit`` also accepts '²', which int() refuses)."""
    return text.isascii() and text.isdigit()


def launched_by_mpi() -> bool:
    """True under mpirun/mpiexec/srun with an MPI plugin; a plain process never imports mpi4py."""
    return any(os.environ.get(v) for v in MPI_LAUNCHER_VARIABLES)


def launcher_size() -> int | None:
    """The rank count the launcher says it started, where it says so (not every launcher does)."""
    sizes = [int(os.environ[v]) for v in MPI_SIZE_VARIABLES if is_digits(os.environ.get(v, "").strip())]
    return sizes[0] if sizes else None


def launcher_rank() -> int:
    """This process's rank as the launcher numbers it (callable before MPI starts), 0 where it does not say."""
    ranks = [os.environ.get(v, "").strip() for v in MPI_RANK_VARIABLES]
    return next((int(v) for v in ranks if is_digits(v)), 0)


def local_launcher_size() -> int:
    """The ranks the launcher started on this node, where it says so (Open MPI, Hydra, PMIx), else 1."""
    local = [os.environ.get(v, "").strip() for v in MPI_LOCAL_SIZE_VARIABLES]
    return next((int(v) for v in local if is_digits(v) and int(v) > 0), 1)


def world():
    """COMM_WORLD under an MPI launcher, else :data:`SERIAL`. Refused when smaller than the launch: mpirun of
    one MPI starts ranks that each find themselves alone under mpi4py built for another (N serial copies of the
    run, all writing one file)."""
    if not launched_by_mpi():
        return SERIAL
    comm, launched = mpi().COMM_WORLD, launcher_size()
    if launched is not None and comm.Get_size() != launched:
        library = (mpi().Get_library_version().splitlines() or ["unknown"])[0].strip()
        raise ConfigError(f"the launcher started {launched} ranks but MPI sees {comm.Get_size()}: the launcher and "
                          f"mpi4py ({library}) are different MPIs; use the mpirun of the MPI mpi4py was built with, "
                          "or activate the environment set up for this one (jobs/setup.sh, VENV)")
    return comm


def _reduce(comm, value, op: str):
    if comm.Get_size() == 1:
        return value
    return comm.allreduce(value, op=getattr(mpi(), op))


def maximum(comm, value):
    """The largest of every rank's value."""
    return _reduce(comm, value, "MAX")


def any_true(comm, value: bool) -> bool:
    """True on every rank if it is true on any."""
    return _reduce(comm, bool(value), "LOR")


def all_true(comm, value: bool) -> bool:
    """True on every rank if it is true on all."""
    return _reduce(comm, bool(value), "LAND")


_SUM_MAX = []      # the MPI operation of sum_and_max, created once


def sum_and_max(comm, sums, maxima):
    """(sums over the ranks of ``sums``, maxima over the ranks of ``maxima``), float64 arrays, in one Allreduce
    (a user-defined operation on the two packed together); the arrays themselves on one rank."""
    if comm.Get_size() == 1:
        return sums, maxima
    import numpy as np
    MPI = mpi()
    if not _SUM_MAX:
        def combine(inbuf, inoutbuf, datatype):
            a, b = np.frombuffer(inbuf, dtype=np.float64), np.frombuffer(inoutbuf, dtype=np.float64)
            half = b.size // 2
            b[:half] += a[:half]
            np.maximum(b[half:], a[half:], out=b[half:])
        _SUM_MAX.append(MPI.Op.Create(combine, commute=True))
    packed = np.concatenate([np.ravel(sums), np.ravel(maxima)]).astype(np.float64)
    out = np.empty_like(packed)
    comm.Allreduce(packed, out, op=_SUM_MAX[0])
    half = np.size(sums)
    return out[:half].reshape(np.shape(sums)), out[half:].reshape(np.shape(maxima))


def first_refusal(problems: list) -> str | None:
    """The first rank's problem among every rank's (None: no problem), named by its rank unless every rank
    had one (then they found the same: the same files, the same arguments)."""
    refused = [rank for rank, problem in enumerate(problems) if problem is not None]
    if not refused:
        return None
    return ("" if len(refused) == len(problems) else f"rank {refused[0]}: ") + str(problems[refused[0]])


def on_every_rank(comm, check: Callable[[], Any]) -> Any:
    """Run ``check()`` on every rank and raise the first UserError any rank met on every rank (named by its
    rank unless every rank met one): a problem with some ranks' own nodes (a model hook failing there) ends
    the job as one refusal, never a hang in the next collective. Returns check()'s result. Collective."""
    try:
        result, problem = check(), None
    except UserError as err:
        result, problem = None, err
    problems = comm.allgather(problem)
    refusal = first_refusal(problems)
    if refusal is not None:
        raise type(next(p for p in problems if p is not None))(refusal)
    return result


def on_root(comm, check: Callable[[], Any]) -> Any:
    """Run ``check()`` on rank 0 only (it reads the file system, say) and raise its UserError on every rank.

    Returns what ``check`` returned on rank 0, and None on the other ranks. Collective: every rank calls it.
    """
    problem, result = None, None
    if comm.Get_rank() == 0:
        try:
            result = check()
        except UserError as err:
            problem = err
    problem = comm.bcast(problem, root=0)
    if problem is not None:
        raise problem
    return result


def ranks_on_node(comm) -> int:
    """How many ranks share this node (a collective under MPI: call it once)."""
    if comm.Get_size() == 1:
        return 1
    node = comm.Split_type(mpi().COMM_TYPE_SHARED)
    count = node.Get_size()
    node.Free()
    return count


ABORT_GRACE_SECONDS = 1.0   # before MPI_Abort: the launcher forwards the rank's last lines first


def abort(comm, code: int) -> None:
    """End the whole job from this rank with exit status ``code``; its error line, already written, stays the
    only line. A launcher may drop output still on its way when the abort reaches it (MPICH's Hydra lost it in
    one of three CI runs), so the abort waits a moment; then the MPI library is told to say nothing of its own
    (:func:`_quiet`) and MPI_Abort ends every rank, wherever each waits."""
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_SECONDS)
    _quiet()
    comm.Abort(code)


def _quiet() -> None:
    """Nothing from the MPI library beside the rank's line. Open MPI 4 (ORTE) sends an 'MPI_ABORT was invoked'
    notice to mpirun, which prints it; several ranks aborting at once race in those notices and mpirun adds an
    ``ORTE_ERROR_LOG`` line: the notice is dropped where ``orte_execute_quiet`` (what ``mpirun -q`` sets) is
    true, set here in this process only. MPICH prints ``Abort(N) on node ...`` from the rank itself: this
    process's stdout and stderr go to /dev/null, once flushed."""
    try:
        ctypes.c_bool.in_dll(ctypes.CDLL(None), "orte_execute_quiet").value = True
    except (OSError, ValueError):        # not Open MPI 4: no such flag
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    except OSError:
        pass


def end_together(comm, code: int) -> int:
    """End this rank's part of a job whose ranks all stop with the same ``code`` (a collective failure or stop,
    its line printed once by rank 0); returns the code to exit with.

    Open MPI's mpirun (ORTE: ``OMPI_MCA_orte_hnp_uri`` is set) answers a rank's non-zero exit with two notices
    of its own ("Primary job terminated normally, but 1 process returned a non-zero exit code", "mpirun detected
    that one or more processes exited with non-zero status"), but a quiet abort (:func:`abort`) with nothing:
    there rank 0 ends the job with the code and the other ranks wait for it in a barrier it never enters.
    MPICH's Hydra passes a non-zero exit on silently, and srun counts each task's status: there every rank
    returns the code."""
    if comm.Get_size() == 1 or code == 0 or not os.environ.get("OMPI_MCA_orte_hnp_uri"):
        return code
    if comm.Get_rank() == 0:
        abort(comm, code)
    comm.Barrier()          # rank 0's abort ends this process here
    return code


LAUNCHER_POLL_SECONDS = 0.2
EXIT_LAUNCHER_GONE = 128 + signal.SIGHUP     # as if hung up on: nobody is left to read it but a batch system


def watch_launcher(rank: int) -> threading.Thread:
    """End this process when the process that started it is gone, as when mpirun is killed with SIGKILL (a
    hard time limit, ``kill -9``): a rank that waits for a peer, or is held, would otherwise wait forever with
    nobody to stop it. The parent of a rank is the launcher's process on its node: mpirun or orted (Open MPI),
    hydra_pmi_proxy (MPICH's Hydra), slurmstepd (srun). A daemon thread polls ``os.getppid()``: an orphan is
    handed to init or a subreaper, so its parent changes; then the rank says so in one line (where its
    stderr still leads somewhere, a batch system's file) and exits at once. Its ``.partial`` output and any
    checkpoint stay, as after any kill; the output's lock is a flock, which the kernel drops. Polling, not
    ``PR_SET_PDEATHSIG``: that fires when the *thread* that forked the rank ends, which a launcher's helper
    thread may do while the launcher lives on."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(LAUNCHER_POLL_SECONDS)
        try:
            os.write(2, f"rank {rank}: error: the MPI launcher (process {parent}) is gone; this rank ends too "
                        "(the output stays .partial; a checkpoint, if any, resumes it)\n".encode())
        except OSError:
            pass
        os._exit(EXIT_LAUNCHER_GONE)

    thread = threading.Thread(target=watch, name="launcher-watch", daemon=True)
    thread.start()
    return thread
