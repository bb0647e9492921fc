"""Logging for every ``zone`` command and service, configured in one place.

``text`` (the default) is one readable line per record; ``json`` is one JSON object
per line (``ts``, ``level``, ``logger``, ``msg`` and the record's extra fields, e.g.
an access line's ``method``, ``path``, ``status``…) for a log shipper. The choice is
exported in ``ZONE_LOG_FORMAT`` so child processes (the HTTP service's gunicorn) log
alike; :func:`formatter` gives gunicorn's own handlers the same format.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

FORMATS = ("text", "json")
ENV = "ZONE_LOG_FORMAT"
TEXT = "%(asctime)s %(name)s %(levelname)s %(message)s"
# attributes every LogRecord has: anything else was passed in ``extra=`` and is a field
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; values JSON cannot hold are written as strings."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": _iso(record.created), "level": record.levelname.lower(),
               "logger": record.name, "msg": record.getMessage()}
        doc.update((k, v) for k, v in vars(record).items()
                   if k not in _STANDARD and not k.startswith("_"))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with extra fields appended as ``key=value``."""

    def __init__(self):
        super().__init__(TEXT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{k}={v}" for k, v in vars(record).items()
                  if k not in _STANDARD and not k.startswith("_")]
        return " ".join([line, *fields]) if fields else line


def _iso(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + \
        f".{int(created % 1 * 1000):03d}Z"


def current_format() -> str:
    fmt = os.environ.get(ENV, "text")
    return fmt if fmt in FORMATS else "text"


def formatter(fmt: str | None = None) -> logging.Formatter:
    return JsonFormatter() if (fmt or current_format()) == "json" else TextFormatter()


def setup(fmt: str | None = None, level: int = logging.INFO) -> None:
    """The root logger writes ``fmt`` lines to stderr; ``None``: as ``ZONE_LOG_FORMAT`` says."""
    fmt = fmt or current_format()
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (one of {', '.join(FORMATS)})")
    os.environ[ENV] = fmt
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "zone_handler", False)]:
        root.removeHandler(old)
    if root.handlers:  # as logging.basicConfig: a host (pytest, an embedding app) decides
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.zone_handler = True
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
