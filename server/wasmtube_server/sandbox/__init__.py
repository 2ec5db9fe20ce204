"""The sandbox: everything that touches wasmtime.

runtime.py (the Engine, its limits and epoch ticker) compiles modules
(compiled.py, compile_cache.py) that instance.py instantiates and pools; a
call runs (invocation.py) on an instance leased for it (lease.py), through
its calling convention (abi/),
with the host functions guests may import (host.py, wasi.py), copying
through memory.py; native.py is the only file that calls wasmtime's C API.
"""

from .abi.common import ImageInput, ImageOutput, Output, Payload
from .abi.conventions import CallingConvention
from .abi.dispatch import call_function
from .call_state import CallLabel
from .compiled import CompiledModule, ExportedFunction, compile_module
from .instance import GuestInstance, InstancePolicy, InstancePool
from .invocation import Invocation, SliceExpired, invoke
from .lease import Lease
from .pixels import PixelFormat
from .runtime import Limits, Runtime

__all__ = [
    "CallLabel",
    "CallingConvention",
    "CompiledModule",
    "ExportedFunction",
    "GuestInstance",
    "ImageInput",
    "ImageOutput",
    "InstancePolicy",
    "InstancePool",
    "Invocation",
    "Lease",
    "Limits",
    "Output",
    "Payload",
    "PixelFormat",
    "Runtime",
    "SliceExpired",
    "call_function",
    "compile_module",
    "invoke",
]
