"""The library internals our code extends, checked against the pinned versions.

bootstrap/tftp/ subclasses tftpy's server context and drives its states itself;
bootstrap/http/serving/heads.py subclasses gunicorn's gthread worker; bootstrap/redfish/
calls two private members of the DMTF client. pyproject.toml pins the three to the
versions tested here; when an upgrade moves what we rely on, these tests say what.
"""

from __future__ import annotations

import inspect
import re
import socket
import tomllib
from collections import deque
from importlib.metadata import version
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _params(func) -> list[str]:
    return list(inspect.signature(func).parameters)


def _pins() -> dict:
    deps = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    return dict(m.groups() for d in deps if (m := re.fullmatch(r"([\w.-]+)==([\w.]+)", d)))


@pytest.mark.parametrize("package", ["tftpy", "gunicorn", "redfish"])
def test_the_installed_version_is_the_pinned_one(package):
    assert _pins().get(package) == version(package), f"{package}: pin and test again"


# ---------------------------------------------------------------------------
# tftpy: bootstrap/tftp/transfers.py (Context), packets.py, service.py
# ---------------------------------------------------------------------------

def test_tftpy_server_context_constructor_and_methods():
    from tftpy.TftpContexts import TftpContext, TftpContextServer
    from tftpy.TftpStates import TftpState, TftpStateExpectACK

    assert _params(TftpContextServer.__init__) == [
        "self", "host", "port", "timeout", "root", "dyn_file_func", "upload_open", "retries",
        "flock"]
    assert _params(TftpContextServer.end) == ["self"]
    assert _params(TftpContext.getBlocksize) == ["self"]
    assert _params(TftpState.handle) == ["self", "pkt", "raddress", "rport"]
    assert _params(TftpStateExpectACK.handle) == ["self", "pkt", "raddress", "rport"]
    assert _params(TftpState.resendLast) == ["self"]
    assert isinstance(TftpContext.next_block, property)


@pytest.fixture
def context(tmp_path):
    from bootstrap.tftp.transfers import Context

    ctx = Context("127.0.0.1", 9, 1.0, str(tmp_path), dyn_file_func=lambda *_a, **_k: None,
                  upload_open=lambda *_a: None, retries=2, flock=False)
    yield ctx
    ctx.end()


def test_tftpy_context_attributes_our_context_reads_and_writes(context):
    for name in ("metrics", "last_update", "state", "host", "port", "address", "tidport",
                 "factory", "retry_count", "timeout", "retries", "timeout_expectACK",
                 "pending_complete", "fileobj", "sock", "last_pkt", "file_to_transfer",
                 "options"):
        assert hasattr(context, name), name
    for name in ("start_time", "bytes", "last_dat_time", "resent_bytes"):
        assert hasattr(context.metrics, name), name
    assert context.address == "127.0.0.1" and context.port == 9
    context.next_block = 65536                 # our shortcut relies on the property's wrap
    assert context.next_block == 0


def test_tftpy_resend_takes_our_sent_block_in_place_of_its_packet(context):
    """resendLast reads last_pkt.buffer, last_pkt.encode().buffer and str(last_pkt)
    (its duplicate count): what transfers._SentBlock supplies instead of a DAT packet."""
    from tftpy.TftpStates import TftpStateExpectACK

    from bootstrap.tftp.transfers import _SentBlock

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(10)
        context.tidport = peer.getsockname()[1]
        context.last_pkt = _SentBlock(b"\x00\x03\x00\x07data", 7)
        TftpStateExpectACK(context).resendLast()
        assert peer.recv(100) == b"\x00\x03\x00\x07data"
    assert context.metrics.resent_bytes == 8 and context.metrics.dups


def test_tftpy_packets_and_errors_we_use():
    from tftpy.TftpPacketFactory import TftpPacketFactory
    from tftpy.TftpPacketTypes import TftpPacketRRQ, TftpPacketWRQ  # noqa: F401 - importable
    from tftpy.TftpShared import TftpErrors, TftpException, TftpTimeoutExpectACK

    pkt = TftpPacketFactory().parse(b"\x00\x01pxelinux.0\x00octet\x00blksize\x001428\x00")
    assert isinstance(pkt, TftpPacketRRQ)
    assert (pkt.filename, pkt.mode, pkt.options) == ("pxelinux.0", "octet", {"blksize": "1428"})
    for code in ("NotDefined", "FileNotFound", "IllegalTftpOp", "AccessViolation"):
        assert isinstance(getattr(TftpErrors, code), int), code
    assert issubclass(TftpException, Exception) and issubclass(TftpTimeoutExpectACK, Exception)


# ---------------------------------------------------------------------------
# gunicorn: bootstrap/http/serving/heads.py (HeadFirstWorker, _Conn)
# ---------------------------------------------------------------------------

OVERRIDDEN = {"accept": ["self", "listener"],
              "on_client_socket_readable": ["self", "conn", "client"],
              "finish_request": ["self", "conn", "fs"],
              "murder_pending": ["self"]}
CALLED = {"enqueue_req": ["self", "conn"]}


@pytest.mark.parametrize("method, params", sorted({**OVERRIDDEN, **CALLED}.items()))
def test_gunicorn_thread_worker_methods_heads_relies_on(method, params):
    from gunicorn.workers.gthread import ThreadWorker

    assert _params(getattr(ThreadWorker, method)) == params


def test_gunicorn_thread_worker_and_connection_state_heads_uses():
    from gunicorn.config import Config
    from gunicorn.workers.gthread import TConn, ThreadWorker

    cfg = Config()
    worker = ThreadWorker(0, 1, [], None, 30, cfg, None)
    try:
        assert isinstance(worker.keepalived_conns, deque) and worker.nr_conns == 0
        assert hasattr(worker, "poller") and worker.cfg is cfg     # poller: init_process
    finally:
        worker.tmp.close()
    assert _params(TConn.__init__) == ["self", "cfg", "sock", "client", "server"]
    ours, theirs = socket.socketpair()
    with ours, theirs:
        conn = TConn(cfg, ours, ("127.0.0.1", 1), ("127.0.0.1", 2))
        assert conn.data_ready is False and hasattr(conn, "timeout")  # heads sets both
        conn.init()
        conn.parser.unreader.unread(b"GET / HTTP/1.1\r\n\r\n")       # the head read ahead
        assert conn.parser.unreader.buf.getvalue()
        conn.close()


# ---------------------------------------------------------------------------
# redfish: bootstrap/redfish/client.py
# ---------------------------------------------------------------------------

def test_redfish_client_private_members_we_call():
    import redfish
    from redfish.rest.v1 import HttpClient

    assert _params(HttpClient._rest_request)[:6] == [
        "self", "path", "method", "args", "body", "headers"]
    client = redfish.redfish_client(base_url="http://127.0.0.1:9", username="u", password="p",
                                    timeout=1, max_retry=0, check_connectivity=False)
    client.set_authorization_key("Basic dTpw")
    client._session.close()        # what Client.close() calls: no request is sent
