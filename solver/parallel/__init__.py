"""Across ranks: the halo exchange, and which MPI library mpi4py and h5py use."""
