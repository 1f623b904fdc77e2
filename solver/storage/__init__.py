"""Files: the output (HDF5 and its XDMF sidecar), checkpoints, provenance, and which files a process may
replace (its own, never the user's)."""
