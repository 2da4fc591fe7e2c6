"""gammadm: Bayesian dark-matter searches with CTAO gamma-ray data.

Library rooms: `gammadm.data` (published data), `gammadm.config` (campaigns),
`gammadm.geometry` (axes, ROI, true grid), `gammadm.instrument` (IRFs).
"""

__version__ = "0.1.0"
