"""Log set-up: one line per event, plain for people or JSON for pipelines.

Call logs carry a `call` attribute (logging's `extra=`) with module,
function, status and duration_ms; the JSON format writes every such
attribute as a field, the plain format has them in its message already.

Log lines carry text from outside: what guests log, names of files in the
module directory. Each record must stay one line, or that text could forge
whole records ("...\n2026-01-01 ... ERROR ..."): the plain format escapes
every control character and Unicode line break, and JSON escapes them by
itself. Only an exception's traceback, after the message, spans lines.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

__all__ = ["JsonFormatter", "PlainFormatter", "configure_logging", "escape_controls"]

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


# C0 controls, DEL, C1 controls (NEL among them) and the Unicode line and
# paragraph separators: each ends a line for some reader, or rewrites one on a
# terminal (ESC). The common three get their usual escapes.
_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    0x2028: "\\u2028",
    0x2029: "\\u2029",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}


def escape_controls(text: str) -> str:
    """`text` with every character that could break or rewrite a line escaped."""
    return text.translate(_ESCAPES)


class PlainFormatter(logging.Formatter):
    """`time LEVEL logger: message`, always one line; a traceback follows it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: json.dumps escapes every control character
    and, ASCII only, U+2028 and U+2029."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, log_format: str) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
