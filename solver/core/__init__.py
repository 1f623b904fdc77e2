"""The problem: the config (loader, schema, validation), the grid and its decomposition, the fields of a model
on a block, and the kernels that advance them. No MPI, no files written: the layers above do that."""
