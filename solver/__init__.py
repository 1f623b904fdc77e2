"""A 2D stencil solver for laptops, workstations and SLURM clusters: numba threads, MPI domain decomposition,
parallel HDF5 output, ensembles. The layers, each importing only those before it (tests/test_layers.py):

    errors, safety, args, comm, machine      the bottom: user errors, signals, the communicator, the machine
    models                                   the physics, one file per model
    core                                     config, grid and decomposition, fields, kernels
    parallel, storage                        halo exchange and MPI libraries; output, checkpoints, provenance
    run                                      planning, the stepper, the time loop
    cli, ensemble, pool, info                the command line and the ensemble drivers
    bench                                    the benchmark (python -m solver bench)
"""
from pathlib import Path

__version__ = "0.1.0"

REPO = Path(__file__).resolve().parent.parent     # the checkout: configs/, jobs/ and the analysis scripts
