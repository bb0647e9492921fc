"""bootstrap.logs: the text and JSON line formats, and the access log's fields."""

from __future__ import annotations

import json
import logging
import sys

from bootstrap import logs
from bootstrap.http.serving.wsgi import access_fields


def record(msg="hello %s", args=("world",), exc_info=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("bootstrap.dhcp", logging.WARNING, __file__, 1, msg, args, exc_info)
    rec.__dict__.update(extra)
    return rec


def test_json_line_has_the_fixed_keys_and_the_extra_fields():
    doc = json.loads(logs.JsonFormatter().format(record(mac="52:54:00:00:00:01", n=3)))
    assert doc["level"] == "warning" and doc["logger"] == "bootstrap.dhcp"
    assert doc["msg"] == "hello world" and doc["mac"] == "52:54:00:00:00:01" and doc["n"] == 3
    assert doc["ts"].endswith("Z") and "T" in doc["ts"]


def test_json_line_holds_a_traceback_and_values_json_cannot():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record(exc_info=sys.exc_info(), odd={1, 2})
    line = logs.JsonFormatter().format(rec)
    assert "\n" not in line  # one record, one line
    doc = json.loads(line)
    assert "RuntimeError: boom" in doc["exc"] and doc["odd"] == "{1, 2}"


def test_text_line_appends_fields():
    line = logs.TextFormatter().format(record(status=404))
    assert "bootstrap.dhcp WARNING hello world status=404" in line


def test_unknown_format_is_refused_with_the_choices():
    try:
        logs.setup("xml")
    except ValueError as exc:
        assert "text, json" in str(exc)
    else:
        raise AssertionError("xml accepted")


def test_access_fields():
    fields = access_fields("GET", "/boot/ipxe", 200, 812, 0.0123, "127.0.0.1",
                           "10.17.1.13, 127.0.0.1")
    assert fields == {"method": "GET", "path": "/boot/ipxe", "status": 200, "bytes": 812,
                      "duration_ms": 12.3, "client": "127.0.0.1",
                      "forwarded_for": "10.17.1.13"}
    assert access_fields("GET", "/x", None, None, 0, "-")["bytes"] == 0
