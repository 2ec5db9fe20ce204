"""Which module version and function a call names, or why there is none.

Names found in the registry need no further checks (only loaded names are
there), so the full checks with their messages run only when a lookup fails.
"""

from __future__ import annotations

from ..errors import FunctionNotCallable, FunctionNotFound
from ..sandbox import ExportedFunction
from .names import check_function_name, check_module_name
from .registry import LoadedModule, ModuleRegistry

__all__ = ["Resolver"]


class Resolver:
    def __init__(self, registry: ModuleRegistry) -> None:
        self._registry = registry

    def module(self, name: str) -> LoadedModule:
        """The version that serves module `name` now, or why not."""
        module = self._registry.serving(name)
        if module is not None:
            return module
        check_module_name(name)
        return self._registry.get(name)

    @staticmethod
    def function(module: LoadedModule, name: str) -> ExportedFunction:
        """The callable function `name` of `module`, or why not."""
        function = module.compiled.functions.get(name)
        if function is not None and function.convention is not None:
            return function
        check_function_name(name)
        if function is None:
            callable_names = ", ".join(f.name for f in module.compiled.callable_functions)
            raise FunctionNotFound(
                f"module {module.name!r} exports no function {name!r}; "
                f"callable functions: {callable_names or 'none'}"
            )
        raise FunctionNotCallable(
            f"function {function.name!r} of module {module.name!r} has signature "
            f"{function.signature}: {function.why_not_callable}"
        )
