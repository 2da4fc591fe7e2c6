"""Events room: GADF DL3 input/output and (later) simulation."""

from .dl3 import EventData, EventFileError, read_events, write_events, write_index

__all__ = ["EventData", "EventFileError", "read_events", "write_events", "write_index"]
