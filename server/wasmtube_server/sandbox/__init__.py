"""Everything that touches wasmtime: the engine, modules, instances, ABIs."""

from .abi import CallingConvention
from .compiled import CompiledModule, ExportedFunction, compile_module
from .engine import make_engine
from .instance import GuestInstance, InstancePool
from .seed_abi import ImageInput, call_seed

__all__ = [
    "CallingConvention",
    "CompiledModule",
    "ExportedFunction",
    "GuestInstance",
    "ImageInput",
    "InstancePool",
    "call_seed",
    "compile_module",
    "make_engine",
]
