"""solver/storage/output.py's MPI paths with this one process as rank 0 or 1 of two over COMM_SELF (the
mpio driver, collective writes, rank 0's renaming, a rank without nodes): run by tests/test_output_unit.py in
a process of its own (MPI starts here, not in pytest's). Prints one line per check and ``ok`` at the end; a
failed check raises."""
from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_output_unit import ATTRS, block, make  # noqa: E402

from solver.comm import mpi  # noqa: E402
from solver.core.grid import init_global_grid  # noqa: E402
from solver.errors import ConfigError  # noqa: E402
from solver.storage import output  # noqa: E402
from solver.storage.output import FieldWriter, write_part  # noqa: E402


def two_ranks(cfg, rank, **owned):
    """This process as rank ``rank`` of two (owning ``owned`` x_range/y_range, default all)."""
    class TwoRanks(mpi().Intracomm):
        def Get_size(self):
            return 2
    return dataclasses.replace(init_global_grid(cfg), comm=TwoRanks(mpi().COMM_SELF), rank=rank, size=2, **owned)


def collective_write_of_a_part_and_of_nothing(tmp):
    with h5py.File(tmp / "a.h5", "w", driver="mpio", comm=mpi().COMM_SELF) as f:
        data = f.create_dataset("C", shape=(4, 5), dtype="f8", fillvalue=-1.0)
        write_part(data, (slice(1, 3), slice(0, 2)), np.ones((2, 2)), collective=True)
        write_part(data, (slice(0, 0), slice(0, 0)), np.ones((0, 0)), collective=True)
        assert data[...].sum() == 4 - 16


def rank_0_writes_the_times_and_names_the_finished_file(tmp):
    cfg = make()
    data = block(cfg)
    for rank in (0, 1):
        path = str(tmp / f"rank{rank}.h5")
        writer = FieldWriter(path, cfg, two_ranks(cfg, rank), ATTRS)
        assert writer.file.driver == "mpio"
        writer.append(0.5, data)
        writer.close({})
        kept, gone = (path, path + ".partial") if rank == 0 else (path + ".partial", path)   # rank 0 renames
        assert os.path.exists(kept) and not os.path.exists(gone)
        assert os.path.exists(tmp / f"rank{rank}.xdmf") == (rank == 0)
        with h5py.File(kept, "r") as f:
            assert f["time"][0] == (0.5 if rank == 0 else 0.0) and np.array_equal(f["C"][0], data[0])


def a_rank_without_nodes_joins_the_collective_write(tmp):
    cfg = make()
    writer = FieldWriter(str(tmp / "run.h5"), cfg, two_ranks(cfg, 1, x_range=(13, 13)), ATTRS)
    writer.append(0.5, np.zeros((1, 9, 0)))
    writer.close({})
    with h5py.File(tmp / "run.h5.partial", "r") as f:
        assert f["C"].shape == (1, 9, 13) and not f["C"][...].any()


def a_discarded_file_stays_and_is_closed_only_by_all_ranks_together(tmp):
    cfg = make()
    alone = FieldWriter(str(tmp / "alone.h5"), cfg, two_ranks(cfg, 0), ATTRS)
    alone.discard()                     # one rank failing: left open for comm.Abort, never a collective close
    assert alone.file and os.path.exists(tmp / "alone.h5.partial")
    alone.file.close()
    together = FieldWriter(str(tmp / "together.h5"), cfg, two_ranks(cfg, 0), ATTRS)
    together.discard(everywhere=True)
    assert not together.file and os.path.exists(tmp / "together.h5.partial")


def gzip_under_mpi_needs_an_hdf5_that_can(tmp):
    cfg = make(output={"compression": "gzip"})
    output.FILTERS_IN_PARALLEL = (99, 0, 0)             # the last check: nothing after it sees this
    FieldWriter(str(tmp / "serial.h5"), cfg, init_global_grid(cfg), ATTRS).close({})
    with pytest.raises(ConfigError, match="under MPI needs parallel HDF5"):
        FieldWriter(str(tmp / "mpi.h5"), cfg, two_ranks(cfg, 0), ATTRS)
    assert not os.path.exists(tmp / "mpi.h5.partial")


if __name__ == "__main__":
    for check in (collective_write_of_a_part_and_of_nothing, rank_0_writes_the_times_and_names_the_finished_file,
                  a_rank_without_nodes_joins_the_collective_write,
                  a_discarded_file_stays_and_is_closed_only_by_all_ranks_together,
                  gzip_under_mpi_needs_an_hdf5_that_can):
        with tempfile.TemporaryDirectory() as tmp:
            check(Path(tmp))
        print(check.__name__.replace("_", " "), flush=True)
    print("ok")
