"""Everything that touches wasmtime: the runtime, modules, instances, ABIs."""

from .abi import CallingConvention
from .compiled import CompiledModule, ExportedFunction, compile_module
from .dispatch import call_function
from .guest_call import ImageInput, ImageOutput, Output, Payload
from .host import CallLabel
from .instance import GuestInstance, InstancePolicy, InstancePool
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
    "Lease",
    "Limits",
    "Output",
    "Payload",
    "PixelFormat",
    "Runtime",
    "call_function",
    "compile_module",
]
