"""Attributes in netCDF's classic data model: how every HDF5 file of the solver stores and reads them."""
from __future__ import annotations

from typing import Any

import numpy as np


def set_netcdf_attrs(attrs, values: dict[str, Any]) -> None:
    """Store attributes in types of the netCDF classic data model: text as fixed-length UTF-8 (NC_CHAR, not
    h5py's variable-length NC_STRING), whole numbers as 32-bit NC_INT, floats as NC_DOUBLE, None as "".
    With NC_STRING and int64 the file is netCDF-4 only: ``nccopy -k nc7`` and classic-model tools refuse it.
    h5py reads such text back as bytes (:func:`attribute` decodes it)."""
    import h5py
    for key, value in values.items():
        if value is None:
            value = ""
        if isinstance(value, str):
            data = value.encode("utf-8")
            length = max(len(data), 1)          # HDF5 has no zero-length strings; NUL padding reads as ""
            attrs.create(key, np.array(data, dtype=f"S{length}"), dtype=h5py.string_dtype("utf-8", length))
            continue
        array = np.asarray(value)
        if array.dtype.kind in "biu" and np.all(np.abs(array.astype(np.int64)) < 2 ** 31):
            value = array.astype(np.int32)
        attrs[key] = value


def attribute(value: Any) -> Any:
    """An attribute as plain Python: text (stored as fixed-length bytes, see :func:`set_netcdf_attrs`)
    decoded, numpy scalars and arrays as numbers and lists. Every reader of provenance goes through here."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value.decode() if isinstance(value, bytes) else value
