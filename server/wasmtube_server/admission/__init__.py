"""Admission: which requests run now, which wait, which are refused.

Every concurrency limit is a number of slots (slots.py); a call runs on the
event loop or on a worker thread (placement.py, workers.py).
"""

from .placement import Placement
from .slots import CallSlots, ModuleSlots, StreamSlots
from .workers import WorkerPool

__all__ = ["CallSlots", "ModuleSlots", "Placement", "StreamSlots", "WorkerPool"]
