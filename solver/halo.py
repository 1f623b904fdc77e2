"""Halo exchange between neighbouring subdomains, non-blocking, with ``start``/``finish`` for overlap.

Each of the (up to) eight neighbours gets the strip of owned nodes it needs, described by an MPI
subarray datatype over the stored subdomain, so nothing is packed by hand and the strided (x-direction)
strips need no copies. Corner strips are exchanged only for halos wider than one node: a five-point
stencil needs them only when deep-halo steps update the halo itself.
"""
from __future__ import annotations

import numpy as np

from .grid import Decomposition

# (dy, dx) offsets of the neighbours; the tag of a message is the index of the direction it travels.
DIRECTIONS = [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)]


class HaloExchange:
    """Exchanges the halo of one stored-subdomain array shape; reuse it for both buffers."""

    def __init__(self, decomp: Decomposition):
        from mpi4py import MPI
        self.MPI, self.comm = MPI, decomp.comm
        h, (ny, nx) = decomp.halo, decomp.local_shape
        cx, cy = decomp.coords
        px, py = decomp.dims
        directions = DIRECTIONS if h > 1 else DIRECTIONS[:4]
        self.links = []     # (neighbour, send type, recv type, send tag, recv tag)
        for tag, (dy, dx) in enumerate(directions):
            ny_, nx_ = cy + dy, cx + dx
            if not (0 <= ny_ < py and 0 <= nx_ < px):
                continue
            neighbour = self.comm.Get_cart_rank([ny_, nx_])
            send = self._subarray((ny, nx), self._strip(dy, decomp.ny_own, h, inner=True),
                                  self._strip(dx, decomp.nx_own, h, inner=True))
            recv = self._subarray((ny, nx), self._strip(dy, decomp.ny_own, h, inner=False),
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
        t = self.MPI.DOUBLE.Create_subarray(list(shape), [rows[1], cols[1]], [rows[0], cols[0]])
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
        for _, send, recv, _, _ in self.links:
            send.Free()
            recv.Free()
        self.links = []
