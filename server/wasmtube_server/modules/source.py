"""Where a module version came from: a file in the module directory, or a registry.

Kept with every version (ListModules shows it) and with every failure, so
the question "which bytes serve, and from where" always has one answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["FILE", "OCI", "ModuleSource"]

FILE = "file"
OCI = "oci"


@dataclass(frozen=True, slots=True)
class ModuleSource:
    # FILE or OCI.
    kind: str
    # The file's path, or the reference pulled as configured (a tag or a digest).
    location: str
    # For OCI: the manifest digest of the version (what a tag pointed at when
    # it was pulled); "" for files.
    digest: str = ""

    @classmethod
    def file(cls, path: Path) -> ModuleSource:
        return cls(FILE, str(path))

    @classmethod
    def oci(cls, reference: str, digest: str = "") -> ModuleSource:
        return cls(OCI, reference, digest)

    def __str__(self) -> str:
        """How errors name it: the path, or the reference with the digest
        it pointed at, if known."""
        if self.kind == OCI and self.digest and self.digest not in self.location:
            return f"{self.location} ({self.digest})"
        return self.location
