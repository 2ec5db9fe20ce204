"""`wasmtube new NAME`: write a ready-to-build Rust guest project.

The project is the template in `guest/template/` with the names filled in,
plus a copy of the guest kit (`guest/wasmtube-guest/`), vendored so that the
project builds on its own, offline, with no path back into this package, and
the guest guide (`GUIDE.md`, docs/guest-guide.md in wasmtube's source), so a
guest author who installed wasmtube with pip has it at hand.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

__all__ = [
    "KIT_DIR",
    "TEMPLATE_DIR",
    "GuestProjectError",
    "crate_name",
    "create_guest_project",
    "is_module_name",
    "project_files",
]

GUEST_DIR = Path(__file__).resolve().parent / "guest"
KIT_DIR = GUEST_DIR / "wasmtube-guest"
TEMPLATE_DIR = GUEST_DIR / "template"
GUIDE = GUEST_DIR / "GUIDE.md"
# Where the kit goes in a new project; the template's Cargo.toml points here.
KIT_NAME = "wasmtube-guest"

# A module name, as the daemon's wasmtube_server/names.py defines it (the
# client must not import the daemon, so the rule is repeated here): a plain
# file stem of letters, digits, '_', '-' and '.', not starting with '.' and
# without '..', at most 128 characters.
MAX_NAME_LENGTH = 128
_MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")

# Template file -> path in the project. `.tmpl` keeps tools from taking the
# template for a real crate, and the .gitignore is stored without its dot
# because wheels drop hidden files.
_TEMPLATE_FILES = {
    "Cargo.toml.tmpl": "Cargo.toml",
    "build.sh.tmpl": "build.sh",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
    "src/lib.rs.tmpl": "src/lib.rs",
}
_EXECUTABLE = {"build.sh"}

# Crate names a guest's own crate must not take: a crate of the standard
# library or one the project depends on would clash with it, and a Rust
# keyword (strict or reserved) is no crate name at all.
_TAKEN_CRATE_NAMES = frozenset(
    """
    alloc core proc_macro std test
    wasmtube_guest serde serde_derive serde_json itoa ryu proc_macro2 quote syn unicode_ident
    abstract as async await become box break const continue crate do dyn else enum extern
    false final fn for if impl in let loop macro match mod move mut override priv pub ref
    return self static struct super trait true try type typeof unsafe unsized use virtual
    where while yield
    """.split()  # noqa: SIM905 - a list literal of 60 names is one a line
)


class GuestProjectError(ValueError):
    """The project cannot be created: a bad name or an occupied directory."""


def is_module_name(name: str) -> bool:
    """Whether `name` can be a module name (the stem of NAME.wasm)."""
    return (
        len(name) <= MAX_NAME_LENGTH
        and _MODULE_NAME.fullmatch(name) is not None
        and ".." not in name
    )


def crate_name(module: str) -> str:
    """The Cargo package name for a module: the module name in lower case with
    every character Cargo does not take ('.') as '_', prefixed with `guest_`
    if it would start with a digit or clash with a Rust name."""
    name = re.sub(r"[^a-z0-9_\-]", "_", module.lower())
    lib = name.replace("-", "_")
    if name[0].isdigit() or lib in _TAKEN_CRATE_NAMES:
        name = f"guest_{name}"
    return name


def create_guest_project(name: str, parent: Path) -> Path:
    """Write a new guest project for module `name` in `parent / name` and
    return that directory.

    Raises GuestProjectError if `name` is not a module name or the directory
    exists and is not empty, OSError if it cannot be written.
    """
    if not is_module_name(name):
        raise GuestProjectError(
            f"{name!r} is not a module name: use at most {MAX_NAME_LENGTH} letters, digits, "
            f"'_', '-' or '.', not starting with '.' and without '..'"
        )
    project = Path(parent) / name
    if project.exists() and not project.is_dir():
        raise GuestProjectError(f"{project} already exists and is not a directory")
    if project.exists() and any(project.iterdir()):
        raise GuestProjectError(
            f"{project} already exists and is not empty: choose another name or --directory"
        )

    crate = crate_name(name)
    values = {"module": name, "crate": crate, "lib": crate.replace("-", "_")}
    project.mkdir(parents=True, exist_ok=True)
    for source, destination in _TEMPLATE_FILES.items():
        text = (TEMPLATE_DIR / source).read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        path = project / destination
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755 if destination in _EXECUTABLE else 0o644)
    # Only the kit's sources: no build output or lock file a developer of the
    # kit may have left in the package directory.
    shutil.copytree(
        KIT_DIR,
        project / KIT_NAME,
        ignore=shutil.ignore_patterns("target", "Cargo.lock", "__pycache__", ".*"),
        # Contents only: an installed package may be read-only, the copy must not.
        copy_function=shutil.copyfile,
    )
    shutil.copyfile(GUIDE, project / GUIDE.name)
    return project


def project_files(project: Path) -> list[str]:
    """The files of a project, relative to it, the kit's summed up as one entry."""
    files = []
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if relative.parts[0] == KIT_NAME:
            continue
        if path.is_file():
            files.append(relative.as_posix())
    return [*files, f"{KIT_NAME}/ (the guest kit, vendored)"]
