"""Review of issue 27's output options: what a user sizing a run's output found wrong (see each test)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from conftest import run_solver, write_config


@pytest.mark.parametrize("nx, output", [(513, {}), (1025, {"precision": "float32", "subsample": [2, 1]})])
def test_uncompressed_snapshots_take_the_bytes_of_their_data(tmp_path, nx, output):
    """513 stored nodes along x (a 2^k + 1 grid, or 1025 every second node) in chunks of 512 made HDF5
    allocate two whole chunks, 1024 columns: the file twice its data and twice what --dry-run predicts."""
    config = write_config(tmp_path, grid={"nx": nx, "ny": 5}, time={"dt": 0.001, "t_end": 0.002},
                          output={"path": "out.h5", "every": 1, **output})
    run_solver("run", config, cwd=tmp_path)
    with h5py.File(tmp_path / "out.h5") as f:
        field = f["C"]
        assert field.shape == (3, 5, 513)
        data = field.size * field.dtype.itemsize
        assert data <= field.id.get_storage_size() <= 1.01 * data
