"""The benchmark (``python -m solver bench``): kernels against the memory-bandwidth bound and other codes.
It imports the solver; nothing in the solver imports it."""
