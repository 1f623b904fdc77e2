"""Files other tools open: netCDF tools (ncdump, nccopy, netCDF4), xarray, h5dump and the XDMF sidecar."""
from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET

import h5py
import netCDF4
import numpy as np
import pytest
import xarray as xr

from conftest import require, run_solver, write_config


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    directory = tmp_path_factory.mktemp("output")
    run_solver("run", write_config(directory), cwd=directory)
    return directory / "out.h5"


def tool(*command, timeout: float = 60) -> str:
    result = subprocess.run([require(command[0]), *map(str, command[1:])], capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))}: {result.stderr}"
    return result.stdout


def test_ncdump_reads_dimensions_units_and_data(output):
    header = tool("ncdump", "-h", output)
    assert re.search(r"time = UNLIMITED ; // \(5 currently\)", header)
    assert re.search(r"\by = 45 ;", header) and re.search(r"\bx = 61 ;", header)
    # dimensions numbered in C's order (the _Netcdf4Dimid attributes), so ncdump lists time, y, x
    assert header.index("time = UNLIMITED") < header.index("y = 45") < header.index("x = 61")
    assert "double C(time, y, x) ;" in header
    for line in ('C:units = "1" ;', 'C:long_name = "concentration" ;', 'x:units = "m" ;', 'y:units = "m" ;',
                 'time:units = "s" ;', ':Conventions = "CF-1.8" ;'):
        assert line in header, line
    assert "string " not in header                      # text attributes are NC_CHAR, not NC_STRING
    values = tool("ncdump", "-v", "time", output)
    assert re.search(r"time = 0, 0\.25, 0\.5, 0\.75, 1 ;", values)


@pytest.mark.parametrize("kind", ["nc7", "classic"])
def test_nccopy_converts_to_the_classic_model(output, tmp_path, kind):
    """Classic-model tools need NC_CHAR text and 32-bit integers; the copy keeps data and attributes."""
    copy = tmp_path / f"copy-{kind}.nc"
    tool("nccopy", "-k", kind, output, copy)
    with netCDF4.Dataset(copy) as ds, h5py.File(output, "r") as f:
        assert ds.data_model == {"nc7": "NETCDF4_CLASSIC", "classic": "NETCDF3_CLASSIC"}[kind]
        assert np.array_equal(ds["C"][:], f["C"][:])
        assert ds.getncattr("ranks") == 1 and "grid:" in ds.getncattr("config")


def test_netcdf4_python_reads_dimensions_units_and_values(output):
    with netCDF4.Dataset(output) as ds, h5py.File(output, "r") as f:
        assert ds.data_model == "NETCDF4"
        assert {name: len(d) for name, d in ds.dimensions.items()} == {"time": 5, "y": 45, "x": 61}
        assert list(ds.dimensions) == ["time", "y", "x"]
        assert ds.dimensions["time"].isunlimited()
        c = ds["C"]
        assert c.dimensions == ("time", "y", "x") and c.units == "1" and c.long_name == "concentration"
        assert ds["x"].units == "m" and ds["y"].units == "m" and ds["time"].units == "s"
        assert np.array_equal(c[:], f["C"][:]) and np.array_equal(ds["x"][:], f["x"][:])
        assert ds.getncattr("Conventions") == "CF-1.8" and ds.getncattr("complete") == 1
        assert isinstance(ds.getncattr("config"), str) and "nx: 61" in ds.getncattr("config")


def test_xarray_and_h5dump_read_the_same_values(output):
    with xr.open_dataset(output, engine="h5netcdf") as ds, h5py.File(output, "r") as f:
        assert ds["C"].dims == ("time", "y", "x") and ds.sizes == {"time": 5, "y": 45, "x": 61}
        assert ds["C"].attrs["units"] == "1" and ds["x"].attrs["units"] == "m" and ds["time"].attrs["units"] == "s"
        assert ds.attrs["Conventions"] == "CF-1.8" and "nx: 61" in ds.attrs["config"]
        assert np.array_equal(ds["C"].values, f["C"][:])
        assert np.array_equal(ds["time"].values, f["time"][:])
    dump = tool("h5dump", "-d", "/time", output)
    assert "(0): 0, 0.25, 0.5, 0.75, 1" in dump


def test_xdmf_sidecar_points_at_datasets_that_exist(output):
    sidecar = output.with_suffix(".xdmf")
    root = ET.parse(sidecar).getroot()                       # well-formed XML
    assert root.tag == "Xdmf"
    collection = root.find("Domain/Grid")
    assert collection.get("GridType") == "Collection" and collection.get("CollectionType") == "Temporal"
    grids = collection.findall("Grid")
    with h5py.File(output, "r") as f:
        times, x, y, shape = f["time"][:], f["x"][:], f["y"][:], f["C"].shape
        assert len(grids) == len(times) == shape[0]
        for index, grid in enumerate(grids):
            assert float(grid.find("Time").get("Value")) == times[index]
            topology = grid.find("Topology")
            assert topology.get("TopologyType") == "2DCoRectMesh"
            assert [int(n) for n in topology.get("Dimensions").split()] == [len(y), len(x)]
            geometry = grid.find("Geometry")
            assert geometry.get("GeometryType") == "ORIGIN_DXDY"
            origin, spacing = ([float(v) for v in item.text.split()] for item in geometry.findall("DataItem"))
            assert origin == [y[0], x[0]]
            assert spacing == pytest.approx([y[1] - y[0], x[1] - x[0]], rel=1e-12)
            attribute = grid.find("Attribute")
            assert attribute.get("Name") == "C" and attribute.get("Center") == "Node"
            slab = attribute.find("DataItem")
            assert slab.get("ItemType") == "HyperSlab"
            assert [int(n) for n in slab.get("Dimensions").split()] == [len(y), len(x)]   # the mesh's shape
            selection, heavy = slab.findall("DataItem")
            start, stride, count = np.array(selection.text.split(), dtype=int).reshape(3, 3)
            assert list(start) == [index, 0, 0] and list(stride) == [1, 1, 1] and list(count) == [1, len(y), len(x)]
            file_name, dataset = heavy.text.strip().split(":")
            assert heavy.get("Format") == "HDF" and heavy.get("Precision") == "8"
            assert (sidecar.parent / file_name).resolve() == output.resolve()
            assert [int(n) for n in heavy.get("Dimensions").split()] == list(f[dataset].shape) == list(shape)
            assert f[dataset].dtype == np.float64


@pytest.mark.mpi
def test_xdmf_sidecar_is_the_same_under_mpi(output, tmp_path):
    config = write_config(tmp_path)
    run_solver("run", config, ranks=2, cwd=tmp_path)
    serial = output.with_suffix(".xdmf").read_text()
    parallel = (tmp_path / "out.xdmf").read_text()
    assert parallel == serial and not list(tmp_path.glob("*.partial"))


def test_xdmf_sidecar_points_each_field_of_a_two_field_model_at_its_own_dataset(tmp_path):
    """gray_scott has u and v: each snapshot's attribute u reads /u and v reads /v (not both the first)."""
    grid = {"nx": 24, "ny": 20, "x": [0.0, 24.0], "y": [0.0, 20.0]}
    config = write_config(tmp_path, base={"model": "gray_scott", "grid": grid,
                                          "initial": {"center": [12.0, 10.0], "half_width": 3.0},
                                          "boundary": dict.fromkeys(("west", "east", "south", "north"), "periodic"),
                                          "time": {"dt": 1.0, "t_end": 4.0}, "output": {"path": "gs.h5", "every": 2},
                                          "parallel": {"threads": 1}, "numerics": {"kernel": "numpy"}})
    run_solver("run", config, cwd=tmp_path)
    root = ET.parse(tmp_path / "gs.xdmf").getroot()
    grids = root.findall("Domain/Grid/Grid")
    assert len(grids) == 3
    with h5py.File(tmp_path / "gs.h5", "r") as f:
        for index, grid in enumerate(grids):
            attributes = grid.findall("Attribute")
            assert [a.get("Name") for a in attributes] == ["u", "v"]
            for attribute in attributes:
                heavy = attribute.find("DataItem").findall("DataItem")[1]
                file_name, dataset = heavy.text.strip().split(":")
                assert dataset == "/" + attribute.get("Name"), (attribute.get("Name"), dataset)
                selection = attribute.find("DataItem").findall("DataItem")[0]
                assert int(selection.text.split()[0]) == index
                assert not np.array_equal(f["u"][index], f["v"][index])   # the two datasets differ
