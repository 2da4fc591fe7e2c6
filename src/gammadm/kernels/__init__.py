"""numba kernels: inner integrals on plain arrays."""
