"""XDMF sidecar: a small XML file next to an output that lets ParaView and VisIt open it directly.

It describes the grid as a regular mesh (``2DCoRectMesh`` with ``ORIGIN_DXDY`` geometry, values listed
slowest axis first: y then x) and the snapshots as a temporal collection, one uniform grid per snapshot
(mesh repeated inline: not every reader follows XDMF references) with one node-centred
attribute per field, a hyperslab ``[i, :, :]`` of the HDF5 dataset ``FIELD(time, y, x)``, declared with the mesh's
rank-2 shape (VTK's XDMF reader, the one ParaView uses, fails to read a slab declared as ``1 ny nx``). The HDF5
file is named relative to the sidecar, so the pair can be moved together. Plain text; no XDMF library.
"""
from __future__ import annotations

import os
import numpy as np


def escape(text: str) -> str:
    """&, < and > as XML entities (xml.sax.saxutils.escape, without importing urllib for a member's start-up)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def sidecar_path(path: str) -> str:
    """results/default.h5 -> results/default.xdmf"""
    return os.path.splitext(path)[0] + ".xdmf"


def write_xdmf(h5_path: str, fields: list[str], x: np.ndarray, y: np.ndarray, times: list[float] | np.ndarray,
               xdmf_path: str | None = None, static: list[str] = (), precision: int = 8) -> str:
    """Write the sidecar of ``h5_path`` whose datasets ``fields`` have shape (len(times), len(y), len(x)) and
    whose ``static`` datasets (coefficient fields) have shape (len(y), len(x)), the same at every time, stored
    as floats of ``precision`` bytes (8: float64, 4: float32). ``x`` and ``y`` are the stored nodes' evenly
    spaced coordinates (a subsampled or windowed output's own)."""
    xdmf_path = xdmf_path or sidecar_path(h5_path)
    nt, ny, nx = len(times), len(y), len(x)
    dx = float(x[-1] - x[0]) / (nx - 1)
    dy = float(y[-1] - y[0]) / (ny - 1)
    target = os.path.relpath(os.path.abspath(h5_path), os.path.dirname(os.path.abspath(xdmf_path)))
    x0, y0 = float(x[0]), float(y[0])
    mesh = [f'        <Topology TopologyType="2DCoRectMesh" Dimensions="{ny} {nx}"/>',
            '        <Geometry GeometryType="ORIGIN_DXDY">',
            f'          <DataItem Format="XML" NumberType="Float" Precision="8" Dimensions="2">{y0!r} {x0!r}</DataItem>',
            f'          <DataItem Format="XML" NumberType="Float" Precision="8" Dimensions="2">{dy!r} {dx!r}</DataItem>',
            '        </Geometry>']
    lines = ['<?xml version="1.0" ?>',
             '<!DOCTYPE Xdmf SYSTEM "Xdmf.dtd" []>',
             '<Xdmf Version="3.0">',
             '  <Domain>',
             '    <Grid Name="snapshots" GridType="Collection" CollectionType="Temporal">']
    for index, t in enumerate(times):
        lines += [f'      <Grid Name="snapshot {index}" GridType="Uniform">',
                  f'        <Time Value="{float(t)!r}"/>',
                  *mesh]
        for field in fields:
            heavy = escape(f"{target}:/{field}")
            lines += [f'        <Attribute Name="{escape(field)}" AttributeType="Scalar" Center="Node">',
                      f'          <DataItem ItemType="HyperSlab" Dimensions="{ny} {nx}" Type="HyperSlab" '
                      f'NumberType="Float" Precision="{precision}">',
                      f'            <DataItem Dimensions="3 3" Format="XML">{index} 0 0 1 1 1 1 {ny} {nx}</DataItem>',
                      f'            <DataItem Format="HDF" NumberType="Float" Precision="{precision}" '
                      f'Dimensions="{nt} {ny} {nx}">{heavy}</DataItem>',
                      '          </DataItem>',
                      '        </Attribute>']
        for name in static:
            heavy = escape(f"{target}:/{name}")
            lines += [f'        <Attribute Name="{escape(name)}" AttributeType="Scalar" Center="Node">',
                      f'          <DataItem Format="HDF" NumberType="Float" Precision="{precision}" '
                      f'Dimensions="{ny} {nx}">{heavy}</DataItem>',
                      '        </Attribute>']
        lines += ['      </Grid>']
    lines += ['    </Grid>', '  </Domain>', '</Xdmf>', '']
    tmp = xdmf_path + ".partial"
    with open(tmp, "w", encoding="utf-8") as stream:
        stream.write("\n".join(lines))
    os.replace(tmp, xdmf_path)
    return xdmf_path
