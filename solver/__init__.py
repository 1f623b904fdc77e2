"""A 2D diffusion solver template: YAML configs, numba kernels, MPI decomposition, parallel HDF5.

Modules, one responsibility each: ``config`` (schema, validation, overrides), ``grid`` (global grid and
decomposition), ``kernels`` (numba, tiled, numpy; no MPI or I/O), ``halo`` (exchange), ``output`` (HDF5
layout), ``provenance``, ``run`` (the run loop) and ``cli`` (the command line).
"""
__version__ = "0.1.0"
