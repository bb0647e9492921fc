"""Live progress: plain lines off a terminal, a JSON event stream, the rich picture."""

from __future__ import annotations

import io
import json

from rich.console import Console

from bootstrap.progress import Progress, snapshot
from bootstrap.state import Store


def seeded(lab_plan, tmp_path) -> Store:
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    store.transition("p01-u01", "installed", source="http")
    store.event("lease", "p01-u02", "dhcp", address="10.17.1.12")
    return store


def test_plain_lines_when_not_a_terminal(lab_plan, tmp_path):
    out = io.StringIO()
    progress = Progress(seeded(lab_plan, tmp_path), stream=out)
    progress.update()
    progress.update()  # nothing new: nothing printed twice
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "p01-u02" in lines[1] and "address=10.17.1.12" in lines[1]


def test_json_event_stream(lab_plan, tmp_path):
    out = io.StringIO()
    Progress(seeded(lab_plan, tmp_path), json_mode=True, stream=out).close()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["kind"] for e in events] == ["state", "lease"]


def test_rich_picture_shows_pods_and_events(lab_plan, tmp_path):
    store = seeded(lab_plan, tmp_path)
    progress = Progress(store, stream=io.StringIO())
    console = Console(record=True, width=120)
    console.print(progress._render())
    text = console.export_text()
    assert "p01" in text and "installed=1" in text and "recent events" in text
    assert snapshot(store)["pods"][0]["states"] == {"planned": 3, "installed": 1}
