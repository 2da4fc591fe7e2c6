"""Instrument room: CTAO IRF files, tabulated response, exposure, true-grid reach."""

from .files import IRFFileError, prod5_filename, prod5_group, resolve_irf_file
from .reach import derive_true_grid, dropped_mass_fraction, check_dropped_mass
from .response import InstrumentResponse, IRFError, NodeTable

__all__ = [
    "IRFError",
    "IRFFileError",
    "InstrumentResponse",
    "NodeTable",
    "check_dropped_mass",
    "derive_true_grid",
    "dropped_mass_fraction",
    "prod5_filename",
    "prod5_group",
    "resolve_irf_file",
]
