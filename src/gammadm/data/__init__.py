"""Published data: fetching, verification, provenance and binary caches."""

from . import fetch
from .fetch import *  # noqa: F403 (the public names are listed in fetch.__all__)

__all__ = fetch.__all__
