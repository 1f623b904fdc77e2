"""Halos: exchange between neighbouring subdomains (non-blocking, ``start``/``finish`` for overlap), and
the boundary conditions that fill the halo where there is no neighbour.

Each of the (up to) eight neighbours gets the strip of owned nodes it needs, for every field at once,
described by an MPI subarray datatype over the stored ``(fields, y, x)`` array, so nothing is packed by hand
and the strided (x-direction) strips need no copies. Corner strips are exchanged only for halos wider than
one node: a five-point stencil needs them only when deep-halo steps update the halo itself. A periodic axis
is a periodic Cartesian communicator: its ends are neighbours like any others (one rank may be its own).

:func:`fill_boundaries` then fills what no neighbour sends: the halo across a periodic axis on one process
(wrapped around) and beyond a zero-flux boundary (mirrored about the boundary node, so the centred
difference across it is zero) and beyond a flux side (the mirror plus an offset, so that difference is the
prescribed gradient). It runs axis by axis, each over the full extent of the other axis (halos
included), so corners come out right in every combination.
"""
from __future__ import annotations

import numpy as np

from ..comm import mpi
from ..core.grid import Decomposition

# (dy, dx) offsets of the neighbours; the tag of a message is the index of the direction it travels.
MIRRORED = ("zero_flux", "flux")     # sides whose halo is the mirror (plus, for flux, an offset)
DIRECTIONS = [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]


class HaloExchange:
    """Exchanges the halo of one stored-subdomain array shape; reuse it for both buffers."""

    def __init__(self, decomp: Decomposition, fields: int = 1):
        MPI = mpi()
        self.MPI, self.comm = MPI, decomp.comm
        h, (ny, nx) = decomp.halo, decomp.local_shape
        cx, cy = decomp.coords
        px, py = decomp.dims
        periodic_y, periodic_x = (decomp.boundary[side] == "periodic" for side in ("south", "west"))
        directions = DIRECTIONS if h > 1 else DIRECTIONS[:4]
        self.links = []     # (neighbour, send type, recv type, send tag, recv tag)
        for tag, (dy, dx) in enumerate(directions):
            ny_, nx_ = cy + dy, cx + dx
            if not ((periodic_y or 0 <= ny_ < py) and (periodic_x or 0 <= nx_ < px)):
                continue
            neighbour = self.comm.Get_cart_rank([ny_ % py, nx_ % px])
            shape = (fields, ny, nx)
            send = self._subarray(shape, self._strip(dy, decomp.ny_own, h, inner=True),
                                  self._strip(dx, decomp.nx_own, h, inner=True))
            recv = self._subarray(shape, self._strip(dy, decomp.ny_own, h, inner=False),
                                  self._strip(dx, decomp.nx_own, h, inner=False))
            back = DIRECTIONS.index((-dy, -dx))
            self.links.append((neighbour, send, recv, tag, back))
        self.requests = []

    @staticmethod
    def _strip(d: int, n_own: int, h: int, inner: bool) -> tuple[int, int]:
        """(start, size) along one axis: owned nodes to send (inner) or halo nodes to fill."""
        if d == 0:
            return h, n_own
        if d < 0:
            return (h, h) if inner else (0, h)
        return (n_own, h) if inner else (n_own + h, h)

    def _subarray(self, shape, rows, cols):
        t = self.MPI.DOUBLE.Create_subarray(list(shape), [shape[0], rows[1], cols[1]], [0, rows[0], cols[0]])
        t.Commit()
        return t

    def start(self, u: np.ndarray) -> None:
        """Post the receives and sends for array u; call :meth:`finish` before reading its halo."""
        assert not self.requests, "finish() the previous exchange first"
        for neighbour, _, recv, _, back in self.links:
            self.requests.append(self.comm.Irecv([u, 1, recv], source=neighbour, tag=back))
        for neighbour, send, _, tag, _ in self.links:
            self.requests.append(self.comm.Isend([u, 1, send], dest=neighbour, tag=tag))

    def finish(self) -> None:
        """Wait for every request of the exchange in flight."""
        self.MPI.Request.Waitall(self.requests)
        self.requests = []

    def update(self, u: np.ndarray) -> None:
        """Fill the halo of u from the neighbours (``update_halo!`` in ImplicitGlobalGrid)."""
        self.start(u)
        self.finish()

    def free(self) -> None:
        """Free the MPI datatypes (MPICH reports leaked handles otherwise)."""
        for _, send, recv, _, _ in self.links:
            send.Free()
            recv.Free()
        self.links = []


def fill_boundaries(u: np.ndarray, decomp: Decomposition, offsets: dict | None = None) -> None:
    """Fill the halo of ``u`` (fields, y, x) on the sides of the global grid that no rank fills: wrap a
    periodic axis held by one process, mirror a zero-flux or flux side about its boundary node.

    ``offsets`` gives, per flux side this rank owns, ``h g``: the spacing normal to the side times the
    side's outward normal derivative, a ``(fields, L)`` array over the stored extent ``L`` along the side
    (halo included). The ghost node m layers out is then ``u[m] + (2 m) (h g)``, the mirror plus the offset
    that makes the centred difference across the boundary node equal g; without an offset (zero_flux, or
    a coefficient field) it is the mirror, so the centred difference is zero."""
    h = decomp.halo
    offsets = offsets or {}
    for axis, (low, high), n in ((2, ("west", "east"), decomp.nx_own), (1, ("south", "north"), decomp.ny_own)):
        def at(start, stop):
            index = [slice(None)] * 3
            index[axis] = slice(start, stop)
            return tuple(index)

        def offset(side, m):
            g = offsets.get(side)
            if g is None:
                return None
            return (2.0 * m) * (g[:, :, np.newaxis] if axis == 2 else g[:, np.newaxis, :])
        kinds = decomp.boundary[low], decomp.boundary[high]
        if kinds == ("periodic", "periodic") and not decomp.has(low):
            u[at(0, h)] = u[at(n, n + h)]
            u[at(n + h, n + 2 * h)] = u[at(h, 2 * h)]
            continue
        depth = min(h, n - 1)            # mirrored layers: ghost h - m is node h + m
        if kinds[0] in MIRRORED and not decomp.has(low):
            for m in range(1, depth + 1):
                extra = offset(low, m)
                mirror = u[at(h + m, h + m + 1)]
                u[at(h - m, h - m + 1)] = mirror if extra is None else mirror + extra
        if kinds[1] in MIRRORED and not decomp.has(high):
            last = h + n - 1
            for m in range(1, depth + 1):
                extra = offset(high, m)
                mirror = u[at(last - m, last - m + 1)]
                u[at(last + m, last + m + 1)] = mirror if extra is None else mirror + extra
