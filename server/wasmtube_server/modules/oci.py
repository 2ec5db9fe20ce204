"""Modules pulled from OCI registries (--pull NAME=REF), hot-swapped like files.

Each pulled module has a thread of its own ("wasmtube-pull-NAME"), with its
own registry client (its token is for its repository), so a slow registry
delays no other module and no call: calls read the registry's serving
version and never wait on a puller.

What a puller does, over and over:

1. A tag is resolved to a manifest digest (a HEAD request, which registries
   do not count against pull limits); a digest reference is its own digest.
2. The same digest as the one serving: nothing to do.
3. A new digest: the manifest is fetched by digest and checked against it,
   its one `application/wasm` layer is fetched (or read back from
   --cache-dir) and checked against the layer's size and sha256, and the
   module is loaded with ModuleRegistry.load, exactly as a file reload is:
   compiled and started beside the serving version, then swapped in. Calls
   never fail over it.
4. Anything wrong (the registry down or refusing, bytes that do not match
   their digest, a manifest that is not a Wasm module, a module that does
   not compile) leaves the last good version serving; the error goes to
   ListModules' last_error, the log and wasmtube_module_pulls_total.

A tag is checked every --pull-interval seconds (give or take a tenth, so a
fleet started together spreads out). After a failure the next attempt
comes sooner, then later and later: the delay doubles from one second (or
the interval, if shorter) up to --pull-backoff-max, half of it random, and
the interval resumes after the first success. A digest reference, once
served, is never fetched again. A manifest digest whose module failed to
load is not fetched again while the tag stays on it: the same bytes would
fail the same way.

With --cache-dir, a puller first serves what it last pulled from the same
reference (oci_cache.py), then asks the registry; a pinned digest found in
the cache is never asked for at all.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wasmtube.oci.artifact import ArtifactError, wasm_layer
from wasmtube.oci.references import Reference, parse_reference

from ..config import Config, parse_pull
from ..metrics import Metrics
from .files import format_size
from .names import MODULE_SUFFIX
from .oci_cache import PulledModuleCache
from .registry import LoadOutcome, ModuleRegistry
from .source import ModuleSource

if TYPE_CHECKING:
    from wasmtube.oci.distribution import RegistryClient

__all__ = ["Backoff", "ModulePuller", "PullState", "Puller", "check_no_file_clash"]

log = logging.getLogger(__name__)

# The first retry after a failure waits at most this long (or the interval).
FIRST_RETRY = 1.0
# How far a regular check may move from --pull-interval, either way.
INTERVAL_JITTER = 0.1
# How long stop() waits for a puller in the middle of a request.
STOP_WAIT = 2.0


@dataclass(slots=True)
class Backoff:
    """Delays after consecutive failures: doubling from `initial` up to
    `maximum`, each one random in its upper half (so a fleet that failed
    together does not retry together)."""

    initial: float
    maximum: float
    failures: int = 0

    def failed(self, rng: random.Random) -> float:
        """Count one more failure; the delay before the next attempt."""
        self.failures += 1
        ceiling = min(self.maximum, self.initial * 2 ** min(self.failures - 1, 62))
        return rng.uniform(ceiling / 2, ceiling)

    def succeeded(self) -> None:
        self.failures = 0


@dataclass(slots=True)
class PullState:
    """What one puller knows: the reference, the digest serving, the last error."""

    name: str
    reference: Reference
    # The manifest digest of the version serving; "" until one does.
    digest: str = ""
    last_error: str = ""
    # Consecutive failed attempts (0 after a success).
    failures: int = 0
    attempts: int = 0
    # A digest whose module failed to load: not fetched again while the tag points at it.
    rejected_digest: str = ""


def check_no_file_clash(config: Config) -> None:
    """FileExistsError if a pulled name is also a module file in --modules:
    which one should serve would depend on timing."""
    for name, reference in parse_pull(config.pull).items():
        path = config.modules_dir / f"{name}{MODULE_SUFFIX}"
        if path.exists() or path.is_symlink():
            raise FileExistsError(
                f"module {name!r} is both pulled from {reference} (--pull {name}=...) and a "
                f"file in the module directory, {path}: remove the file or the --pull"
            )


class Puller:
    """Every --pull of the daemon: started with it, ready once each module
    has been served from the cache or tried once, stopped with it."""

    def __init__(
        self,
        config: Config,
        registry: ModuleRegistry,
        metrics: Metrics,
        cache_directory: Path | None,
    ) -> None:
        """`cache_directory` is the compile cache's private directory (None
        without --cache-dir): pulled modules are kept in it."""
        check_no_file_clash(config)
        self._config = config
        self._registry = registry
        self._metrics = metrics
        self._cache_directory = cache_directory
        self._stopping = threading.Event()
        self._pullers: list[ModulePuller] = []

    def start(self) -> None:
        pulls = parse_pull(self._config.pull)
        if not pulls:
            return
        # oras-py and requests load only when something is pulled.
        from wasmtube.oci.distribution import RegistryClient

        directory = self._cache_directory
        cache = PulledModuleCache(directory, pulls) if directory is not None else None
        for name, text in pulls.items():
            reference = parse_reference(text)
            client = RegistryClient(
                reference,
                insecure=_insecure(reference, self._config.registry_insecure),
                credentials_file=self._config.registry_auth,
            )
            puller = ModulePuller(
                PullState(name, reference),
                client,
                self._config,
                self._registry,
                self._metrics,
                cache,
                self._stopping,
            )
            self._pullers.append(puller)
            puller.start()

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until every module was served from the cache or tried once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for puller in self._pullers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not puller.started.wait(left):
                return False
        return True

    def states(self) -> list[PullState]:
        return [puller.state for puller in self._pullers]

    def stop(self) -> None:
        self._stopping.set()
        deadline = time.monotonic() + STOP_WAIT
        for puller in self._pullers:
            puller.join(max(0.0, deadline - time.monotonic()))


class ModulePuller:
    def __init__(
        self,
        state: PullState,
        client: RegistryClient,
        config: Config,
        registry: ModuleRegistry,
        metrics: Metrics,
        cache: PulledModuleCache | None,
        stopping: threading.Event,
    ) -> None:
        self.state = state
        self._client = client
        self._config = config
        self._registry = registry
        self._metrics = metrics
        self._cache = cache
        self._stopping = stopping
        self._interval = config.pull_interval
        self._backoff = Backoff(min(FIRST_RETRY, config.pull_interval), config.pull_backoff_max)
        self._rng = random.Random()
        # Set once served from the cache or tried once: the daemon is ready then.
        self.started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"wasmtube-pull-{state.name}", daemon=True
        )

    @property
    def _source(self) -> str:
        return str(self.state.reference)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        state = self.state
        try:
            if self._guarded(self._serve_cached):
                self.started.set()
            while not self._stopping.is_set():
                if state.reference.pinned and state.digest == state.reference.digest:
                    return  # a digest never changes: nothing more to fetch
                ok = self._guarded(self._attempt)
                self.started.set()
                if ok:
                    self._backoff.succeeded()
                    jitter = self._rng.uniform(1 - INTERVAL_JITTER, 1 + INTERVAL_JITTER)
                    delay = self._interval * jitter
                else:
                    delay = self._backoff.failed(self._rng)
                state.failures = self._backoff.failures
                if self._stopping.wait(delay):
                    return
        finally:
            self.started.set()
            self._client.close()

    def _guarded(self, step: Callable[[], bool]) -> bool:
        """`step()`, with an unexpected error (a bug, here or in a library)
        logged and counted as a failed attempt: the pulls go on, backing off."""
        try:
            return step()
        except Exception as e:
            log.exception("module %s: pulling failed unexpectedly", self.state.name)
            self._fail(f"unexpected error: {type(e).__name__}: {e}", "error")
            return False

    def _serve_cached(self) -> bool:
        """Serve what was last pulled from this reference, if the cache has it."""
        if self._cache is None:
            return False
        cached = self._cache.lookup(self.state.name, self._source)
        if cached is None:
            return False
        outcome = self._load(cached.wasm, cached.digest, None)
        if outcome is LoadOutcome.FAILED:
            return False
        self._metrics.module_pulled(self.state.name, "cached")
        log.info(
            "module %s: serving %s (%s) from the cache while the registry is asked",
            self.state.name,
            self._source,
            cached.digest,
        )
        return True

    def _attempt(self) -> bool:
        """One round: resolve, fetch if new, load. False if the registry
        failed (and the next attempt backs off)."""
        # Imported here with oras-py (see Puller.start).
        from wasmtube.oci.distribution import RegistryError

        state = self.state
        state.attempts += 1
        noticed = time.monotonic()
        try:
            resolved = self._client.resolve()
            digest = resolved.digest
            if digest == state.rejected_digest:
                return True  # its load error stays in last_error
            if digest == state.digest:
                self._registry.clear_failure(state.name)
                state.last_error = ""
                self._metrics.module_pulled(state.name, "unchanged")
                return True
            manifest = resolved.manifest or self._client.manifest(digest)
            try:
                layer = wasm_layer(manifest)
            except ArtifactError as e:
                raise RegistryError(f"{digest} is not a Wasm module: {e}", "bad_artifact") from e
            wasm = self._cache.module(layer.digest, layer.size) if self._cache else None
            if wasm is None:
                limit = self._config.max_module_size
                wasm = self._client.fetch(layer, limit, f"--max-module-size {format_size(limit)}")
        except RegistryError as e:
            self._fail(str(e), e.reason)
            return False
        if self._stopping.is_set():
            return True
        outcome = self._load(wasm, digest, noticed)
        if outcome is LoadOutcome.FAILED:
            state.rejected_digest = digest
            self._metrics.module_pulled(state.name, "load_failed")
            return True
        state.last_error = ""
        if self._cache is not None:
            self._cache.store(state.name, self._source, digest, layer.digest, wasm)
        self._metrics.module_pulled(
            state.name, "updated" if outcome is LoadOutcome.LOADED else "unchanged"
        )
        return True

    def _load(self, wasm: bytes, digest: str, noticed: float | None) -> LoadOutcome:
        state = self.state
        source = ModuleSource.oci(self._source, digest)
        outcome = self._registry.load(state.name, wasm, source, noticed)
        if outcome is not LoadOutcome.FAILED:
            state.digest, state.rejected_digest = digest, ""
        return outcome

    def _fail(self, error: str, reason: str) -> None:
        state = self.state
        state.last_error = f"pull {self._source}: {error}"
        self._registry.record_failure(
            state.name,
            state.last_error,
            f"pull_{reason}",
            source=ModuleSource.oci(self._source),
        )
        self._metrics.module_pulled(state.name, reason)


def _insecure(reference: Reference, insecure: Iterable[str]) -> bool:
    """Whether --registry-insecure names the reference's registry: as
    HOST:PORT, or as HOST for every port of it."""
    host = reference.registry.rsplit(":", 1)[0] if "]" not in reference.registry[-1:] else ""
    return any(entry in (reference.registry, host) for entry in insecure)
