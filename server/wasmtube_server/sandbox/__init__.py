"""Everything that touches wasmtime: the runtime, modules, instances, ABIs."""

from .abi import CallingConvention
from .compiled import CompiledModule, ExportedFunction, compile_module
from .dispatch import call_function
from .guest_call import ImageInput, Payload
from .host import CallLabel
from .instance import GuestInstance, InstancePolicy, InstancePool
from .runtime import Limits, Runtime

__all__ = [
    "CallLabel",
    "CallingConvention",
    "CompiledModule",
    "ExportedFunction",
    "GuestInstance",
    "ImageInput",
    "InstancePolicy",
    "InstancePool",
    "Limits",
    "Payload",
    "Runtime",
    "call_function",
    "compile_module",
]
