"""The status page in headless Debian Chromium: the lab pod's nodes shown, refreshed live."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib

import pytest

from bootstrap.http import create_app
from bootstrap.http.serving.wsgi import serving
from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone
from http_peers import LAB

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BOOTING_RGB = (0xFF, 0xD5, 0x9E)   # .s-booting in templates/status.html
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("status")
    plan = compile_plan(load_zone(LAB))
    store = Store(str(folder / "zone.db"))
    store.seed(plan)
    store.transition("p01-u03", "booting", source="dhcp")
    with serving(create_app(plan, store, {"NODE_SECRET": "x"})) as server:
        yield server.url + "/", plan, folder
    store.close()


def chromium(folder, *args) -> subprocess.CompletedProcess:
    profile = folder / f"profile-{len(list(folder.iterdir()))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, timeout=90)


def png_pixels(data: bytes) -> tuple[int, int, set]:
    """Width, height and the set of RGB colours of an 8-bit non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    step = 4 if colour == 6 else 3
    raw, stride, prev, colours = zlib.decompress(idat), width * step, bytearray(width * step), set()
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        row = _unfilter(line[0], bytearray(line[1:]), prev, step)
        colours.update(zip(row[0::step], row[1::step], row[2::step]))
        prev = row
    return width, height, colours


def _unfilter(kind: int, row: bytearray, prev: bytearray, step: int) -> bytearray:
    for i in range(len(row)):
        left = row[i - step] if i >= step else 0
        up, corner = prev[i], prev[i - step] if i >= step else 0
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + up) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            row[i] = (row[i] + pred) & 0xFF
    return row


def test_dom_shows_every_lab_pod_node_after_the_live_refresh(page):
    url, plan, folder = page
    out = chromium(folder, "--virtual-time-budget=5000", "--dump-dom", url)
    dom = out.stdout.decode()
    assert out.returncode == 0, out.stderr[-2000:]
    for name in plan.pods["p01"].nodes:
        assert f">{name}</span>" in dom, name
    assert "live, updated" in dom  # the JSON poll ran and redrew the page
    assert 'class="node s-booting" title="server: booting">p01-u03<' in dom


def test_screenshot_shows_the_booting_node_badge(page):
    url, _, folder = page
    shot = folder / "status.png"
    out = chromium(folder, "--window-size=800,400", "--hide-scrollbars",
                   "--virtual-time-budget=3000", f"--screenshot={shot}", url)
    assert out.returncode == 0 and shot.exists(), out.stderr[-2000:]
    width, height, colours = png_pixels(shot.read_bytes())
    assert (width, height) == (800, 400)
    assert BOOTING_RGB in colours  # p01-u03's badge is painted in the booting colour
    assert len(colours) > 20  # text was drawn, not a blank page
