"""The TFTP service by the RFCs (1350, 2347, 2348, 2349), against raw requests and
real clients (curl, busybox tftp, atftp, tftp-hpa) on 127.0.0.1."""

from __future__ import annotations

import io
import os
import shutil
import socket
import struct
import subprocess

import pytest

from bootstrap.tftp import TftpService

IPXE = "/usr/lib/ipxe"
UNDIONLY = os.path.join(IPXE, "undionly.kpxe")
RRQ, DATA, ACK, ERROR, OACK = 1, 3, 4, 5, 6


@pytest.fixture
def service(tmp_path):
    svc = TftpService(IPXE, str(tmp_path / "cache"), None, "127.0.0.1", 0).start()
    yield svc
    svc.stop()


def rrq(name: str, *options: tuple) -> bytes:
    opts = b"".join(f"{k}\0{v}\0".encode() for k, v in options)
    return struct.pack("!H", RRQ) + name.encode() + b"\0octet\0" + opts


class Peer:
    """A raw TFTP client socket: send a request, read answers from the transfer's port."""

    def __init__(self, service):
        self.server = ("127.0.0.1", service.port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(10)
        self.tid = None

    def ask(self, packet: bytes) -> bytes:
        self.sock.sendto(packet, self.server)
        return self.receive()

    def receive(self) -> bytes:
        answer, self.tid = self.sock.recvfrom(65536)
        return answer

    def ack(self, block: int) -> bytes:
        self.sock.sendto(struct.pack("!HH", ACK, block), self.tid)
        return self.receive()

    def close(self):
        self.sock.close()


@pytest.fixture
def peer(service):
    p = Peer(service)
    yield p
    p.close()


def opcode(packet: bytes) -> int:
    return struct.unpack("!H", packet[:2])[0]


def oack_options(packet: bytes) -> dict:
    assert opcode(packet) == OACK, packet[:40]
    fields = packet[2:].split(b"\0")[:-1]
    return {k.decode().lower(): v.decode() for k, v in zip(fields[::2], fields[1::2])}


def error_code(packet: bytes) -> int:
    assert opcode(packet) == ERROR, packet[:40]
    return struct.unpack("!H", packet[2:4])[0]


def read(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def test_option_names_are_case_insensitive(peer):
    assert oack_options(peer.ask(rrq("undionly.kpxe", ("BLKSIZE", 1024)))) == {"blksize": "1024"}
    assert len(peer.ack(0)) == 4 + 1024


@pytest.mark.parametrize("asked, expected", [
    ([("timeout", 3)], {"timeout": "3"}),
    ([("tsize", 0)], {"tsize": str(os.path.getsize(UNDIONLY))}),
    ([("TSize", 0), ("windowsizeX", 4)], {"tsize": str(os.path.getsize(UNDIONLY))}),
])
def test_the_oack_holds_only_the_options_asked_for(peer, asked, expected):
    assert oack_options(peer.ask(rrq("undionly.kpxe", *asked))) == expected


def test_without_options_there_is_no_oack_but_the_first_block(peer):
    answer = peer.ask(rrq("undionly.kpxe"))
    assert struct.unpack("!HH", answer[:4]) == (DATA, 1) and len(answer) == 4 + 512


@pytest.mark.parametrize("value", ["abc", "4", "0", "-1", "1e3"])
def test_a_blksize_below_8_or_not_a_number_fails_negotiation(peer, value):
    assert error_code(peer.ask(rrq("undionly.kpxe", ("blksize", value)))) == 8


def test_a_blksize_above_the_datagram_limit_is_lowered_and_its_blocks_arrive(peer):
    assert oack_options(peer.ask(rrq("undionly.kpxe", ("blksize", 70000)))) == {
        "blksize": "65464"}
    assert len(peer.ack(0)) == 4 + 65464


def blocks(peer, count: int) -> list[int]:
    """The block numbers of the next ``count`` DATA packets, without acknowledging any."""
    return [struct.unpack("!HH", peer.receive()[:4])[1] for _ in range(count)]


def test_a_window_of_blocks_is_sent_per_ack_and_resent_from_a_gap(peer):
    answer = peer.ask(rrq("undionly.kpxe", ("blksize", 512), ("windowsize", 4)))
    assert oack_options(answer) == {"blksize": "512", "windowsize": "4"}
    peer.sock.sendto(struct.pack("!HH", ACK, 0), peer.tid)
    assert blocks(peer, 4) == [1, 2, 3, 4]
    peer.sock.sendto(struct.pack("!HH", ACK, 2), peer.tid)      # 3 and 4 lost
    assert blocks(peer, 4) == [3, 4, 5, 6]


def test_a_window_not_acknowledged_is_sent_again(peer):
    assert opcode(peer.ask(rrq("undionly.kpxe", ("windowsize", 4)))) == OACK
    peer.sock.sendto(struct.pack("!HH", ACK, 0), peer.tid)
    assert blocks(peer, 4) == [1, 2, 3, 4]
    assert blocks(peer, 4) == [1, 2, 3, 4]                      # after the service's timeout


def test_a_windowed_transfer_delivers_the_whole_file(peer):
    assert opcode(peer.ask(rrq("undionly.kpxe", ("windowsize", 8), ("blksize", 1024)))) == OACK
    got, acked = bytearray(), 0
    while True:
        for _ in range(8):
            packet = peer.ack(acked) if _ == 0 else peer.receive()
            block = struct.unpack("!HH", packet[:4])[1]
            assert block == acked + 1 + _
            got += packet[4:]
            if len(packet) < 4 + 1024:
                peer.sock.sendto(struct.pack("!HH", ACK, block), peer.tid)
                assert bytes(got) == read(UNDIONLY)
                return
        acked += 8


class FailingFile(io.BytesIO):
    """A file whose second read fails, as a disk error or a vanished NFS file does."""

    reads = 0

    def read(self, size=-1):
        self.reads += 1
        if self.reads > 1:
            raise OSError(5, "Input/output error")
        return super().read(size)


def test_a_transfer_failing_midway_ends_with_an_error_to_the_client(service, peer):
    service.source.open = lambda name: FailingFile(b"x" * 5000)
    first = peer.ask(rrq("undionly.kpxe"))
    assert opcode(first) == DATA
    assert error_code(peer.ack(1)) == 0


def test_stopping_the_service_tells_running_transfers(service, peer):
    assert opcode(peer.ask(rrq("undionly.kpxe"))) == DATA
    service.stop()
    assert error_code(peer.receive()) == 0


# -- real clients -------------------------------------------------------------

@pytest.mark.parametrize("blksize", ["8", "1024", "1468", "65464"])
def test_curl_with_block_sizes_from_the_rfc_range(service, tmp_path, blksize):
    out = tmp_path / "got"
    result = subprocess.run(["curl", "-sS", "--max-time", "30", "--tftp-blksize", blksize,
                             "-o", str(out), f"tftp://127.0.0.1:{service.port}/undionly.kpxe"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert read(out) == read(UNDIONLY)


@pytest.mark.parametrize("blksize", ["512", "1024", "65464"])
def test_busybox_tftp_with_block_sizes(service, tmp_path, blksize):
    out = tmp_path / "got"
    result = subprocess.run(["busybox", "tftp", "-g", "-b", blksize, "-r", "undionly.kpxe",
                             "-l", str(out), "127.0.0.1", str(service.port)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert read(out) == read(UNDIONLY)


@pytest.mark.skipif(shutil.which("atftp") is None, reason="atftp not installed")
@pytest.mark.parametrize("name, options", [
    ("undionly.kpxe", []),
    ("undionly.kpxe", ["--option", "blksize 1428", "--option", "tsize 0"]),
    ("undionly.kpxe", ["--option", "timeout 2"]),
    ("undionly.kpxe", ["--option", "windowsize 1"]),
    ("undionly.kpxe", ["--option", "windowsize 8"]),
    ("undionly.kpxe", ["--option", "windowsize 16", "--option", "blksize 8"]),
    # 2 MB in 24-byte blocks: the block number passes 65535 inside windows
    ("ipxe.iso", ["--option", "windowsize 16", "--option", "blksize 24"]),
])
def test_atftp_gets_files(service, tmp_path, name, options):
    out = tmp_path / "got"
    result = subprocess.run(["atftp", *options, "-g", "-r", name, "-l", str(out),
                             "127.0.0.1", str(service.port)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert read(out) == read(os.path.join(IPXE, name))


# -- the path MTU: a 1500-byte link between two namespaces of this test ------------

@pytest.fixture
def link_1500(tmp_path):
    """(service in namespace srv on 10.38.0.1, namespace cli at 10.38.0.2), MTU 1500."""
    from zonelab.netns import Namespaces, entered

    with Namespaces("tftp") as lab:
        srv, cli = lab.namespace("srv"), lab.namespace("cli")
        lab.link(srv, "eth0", cli, "eth0", "10.38.0.1/24", "10.38.0.2/24")
        for ns in (srv, cli):
            ns.ip("link", "set", "dev", "eth0", "mtu", "1500")
        with entered(srv.name):         # the service's sockets and threads live in srv
            svc = TftpService(IPXE, str(tmp_path / "cache"), None, "10.38.0.1", 0).start()
        try:
            yield svc, cli
        finally:
            svc.stop()


@pytest.mark.netns
def test_blksize_is_capped_by_the_path_mtu_to_the_client(link_1500, tmp_path):
    from zonelab.netns import entered

    svc, cli = link_1500
    with entered(cli.name):
        peer = Peer(svc)
    peer.server = ("10.38.0.1", svc.port)
    try:
        assert oack_options(peer.ask(rrq("undionly.kpxe", ("blksize", 65464)))) == {
            "blksize": "1468"}
        assert len(peer.ack(0)) == 4 + 1468
    finally:
        peer.close()
    out = tmp_path / "got"
    cli.run(["curl", "-sS", "--max-time", "30", "--tftp-blksize", "65464", "-o", str(out),
             f"tftp://10.38.0.1:{svc.port}/undionly.kpxe"])
    assert read(out) == read(UNDIONLY)
