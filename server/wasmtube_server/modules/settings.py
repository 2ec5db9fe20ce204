"""Per-module settings: an optional `NAME.toml` beside `NAME.wasm`.

    seed_offset = 0            # where seed-ABI input goes (else --seed-offset)
    instance_policy = "fresh"  # "pooled" or "fresh" (else --instance-policy)
    call_timeout = 2.5         # seconds, at most --call-timeout
    max_memory = "64MiB"       # bytes, or with KiB/MiB/GiB; at most --max-memory

    [config]                   # static values the guest reads with wasmtube.config
    greeting = "Hello"

Every key is optional. A module's file may only tighten the daemon's limits:
the operator's options stay the bounds of every sandbox. `--module-policy`
names a module explicitly, so it wins over the file's instance_policy.

The file is read with its module and reloaded with it. A file that does not
parse or holds a bad value fails the load like a bad module: the version
that serves keeps serving, with the settings it had.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import INSTANCE_POLICIES, WASM_PAGE, Config, parse_byte_size
from ..errors import SettingsError

__all__ = ["MAX_SETTINGS_SIZE", "ModuleSettings", "parse_settings"]

# The most a settings file may hold (and at most --max-module-size): a few
# lines of TOML need far less, and the file is read on every sync of its module.
MAX_SETTINGS_SIZE = 1 << 20
MAX_SEED_OFFSET = (1 << 31) - 1


@dataclass(frozen=True, slots=True)
class ModuleSettings:
    """What one module version runs with: its file's values over the daemon's."""

    seed_offset: int
    instance_policy: str
    call_timeout: float
    max_memory: int
    # The `[config]` table as compact UTF-8 JSON, what wasmtube.config copies.
    guest_config: bytes = b"{}"
    # Hex SHA-256 of the file; "" when the module has none.
    file_sha256: str = ""

    @classmethod
    def defaults(cls, config: Config, name: str) -> ModuleSettings:
        """The settings of a module without a file: the daemon's options."""
        return cls(
            seed_offset=config.seed_offset,
            instance_policy=config.policy_for(name),
            call_timeout=config.call_timeout,
            max_memory=config.max_memory,
        )


def parse_settings(data: bytes, name: str, config: Config) -> ModuleSettings:
    """The settings of module `name` from its file's bytes; raises SettingsError."""
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise SettingsError(f"is not UTF-8 text (byte {e.start})") from e
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"is not valid TOML: {e}") from e
    values = {key.replace("-", "_"): value for key, value in table.items()}
    unknown = sorted(set(values) - set(_READERS))
    if unknown:
        raise SettingsError(
            f"has unknown setting {unknown[0]!r}; the settings are {', '.join(sorted(_READERS))}"
        )
    settings = ModuleSettings.defaults(config, name)
    fields: dict[str, Any] = {}
    for key, value in values.items():
        fields[key] = _READERS[key](value, config, name)
    if "config" in fields:
        fields["guest_config"] = fields.pop("config")
    return ModuleSettings(
        seed_offset=fields.get("seed_offset", settings.seed_offset),
        instance_policy=fields.get("instance_policy", settings.instance_policy),
        call_timeout=fields.get("call_timeout", settings.call_timeout),
        max_memory=fields.get("max_memory", settings.max_memory),
        guest_config=fields.get("guest_config", settings.guest_config),
        file_sha256=hashlib.sha256(data).hexdigest(),
    )


def _seed_offset(value: object, config: Config, name: str) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_SEED_OFFSET:  # type: ignore[operator]
        raise SettingsError(f"seed_offset must be an integer from 0 to 2^31-1, got {value!r}")
    return value  # type: ignore[return-value]


def _instance_policy(value: object, config: Config, name: str) -> str:
    if value not in INSTANCE_POLICIES:
        raise SettingsError(
            f"instance_policy must be one of {', '.join(map(repr, INSTANCE_POLICIES))}, "
            f"got {value!r}"
        )
    # An explicit --module-policy for this module is the operator's word.
    return config.module_policies.get(name, str(value))


def _call_timeout(value: object, config: Config, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise SettingsError(f"call_timeout must be a number of seconds > 0, got {value!r}")
    if value > config.call_timeout:
        raise SettingsError(
            f"call_timeout = {value} is longer than the daemon allows any call "
            f"(--call-timeout {config.call_timeout:g}); a module may only shorten it"
        )
    return float(value)


def _max_memory(value: object, config: Config, name: str) -> int:
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise SettingsError(f'max_memory must be bytes or a size such as "64MiB", got {value!r}')
    try:
        size = parse_byte_size(value)
    except ValueError as e:
        raise SettingsError(f"max_memory: {e}") from e
    if size < WASM_PAGE:
        raise SettingsError(f"max_memory must be at least one 64 KiB page, got {size} bytes")
    if size > config.max_memory:
        raise SettingsError(
            f"max_memory = {value!r} is more than the daemon allows any instance "
            f"(--max-memory {config.max_memory} bytes); a module may only lower it"
        )
    return size


def _config(value: object, config: Config, name: str) -> bytes:
    if not isinstance(value, Mapping):
        raise SettingsError(f"config must be a table ([config]), got {value!r}")
    # TOML dates and times have no JSON type: guests get ISO 8601 strings.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_iso_format).encode(
        "utf-8"
    )


def _iso_format(value: object) -> str:
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_READERS: dict[str, Callable[[Any, Config, str], Any]] = {
    "seed_offset": _seed_offset,
    "instance_policy": _instance_policy,
    "call_timeout": _call_timeout,
    "max_memory": _max_memory,
    "config": _config,
}
