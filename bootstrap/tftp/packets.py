"""Reading a request off the wire and the ERROR answers to it.

The request loop sees every datagram anyone sends to port 69, so this is where a
request is judged before it costs a socket, a file or a fetch: tftpy's decoder on
untrusted bytes, then the checks tftpy leaves out (write requests, the mode, option
values). A refusal is answered with an ERROR that is never larger than the request
it answers, so refusals reflect nothing toward a spoofed source.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketRRQ, TftpPacketWRQ
from tftpy.TftpShared import TftpErrors

from .names import clean_name

ERROR = 5
BLKSIZE_MIN, BLKSIZE_MAX = 8, 65464     # RFC 2348; 65464 + headers fit one IPv4 datagram
MAX_TIMEOUT = 255                       # seconds, RFC 2349's upper bound
OPTION_REFUSED = 8                      # RFC 2347's "option negotiation failed"
_ERROR_HEAD = struct.Struct("!HH")
_FACTORY = TftpPacketFactory()


class Refusal(NamedTuple):
    code: int           # TFTP error code
    message: str        # said to the client (and cut to fit)
    why: str            # for the log
    name: str | None = None


def error_packet(code: int, message: str, request_len: int) -> bytes | None:
    """An ERROR no longer than ``request_len`` (its message cut to fit), or None if none fits."""
    room = request_len - _ERROR_HEAD.size - 1
    if room < 0:
        return None
    return _ERROR_HEAD.pack(ERROR, code) + message.encode("ascii")[:room] + b"\0"


def read_request(buffer: bytes) -> tuple:
    """(packet, name) for a read request we may serve, else (None, :class:`Refusal`).

    The packet's options are replaced by the ones we honour, with sane values
    (tftpy would take any ``blksize`` up to 65536, which no datagram can carry).
    """
    try:
        pkt = _FACTORY.parse(buffer)
    except Exception as exc:  # noqa: BLE001 - tftpy's decoder on untrusted bytes
        return None, Refusal(TftpErrors.IllegalTftpOp, "malformed", f"malformed ({exc!r})")
    if isinstance(pkt, TftpPacketWRQ):
        return None, Refusal(TftpErrors.AccessViolation, "read only", "a write request",
                             pkt.filename)
    if not isinstance(pkt, TftpPacketRRQ):
        return None, Refusal(TftpErrors.IllegalTftpOp, "not a request", "not a read request")
    if pkt.mode != "octet":
        return None, Refusal(TftpErrors.IllegalTftpOp, "octet mode only",
                             f"mode {pkt.mode!r}", pkt.filename)
    name = clean_name(pkt.filename)
    if name is None:
        return None, Refusal(TftpErrors.AccessViolation, "access violation",
                             "name outside the served tree", pkt.filename)
    options = honoured_options(pkt.options)
    if isinstance(options, Refusal):
        return None, options._replace(name=pkt.filename)
    pkt.options = options
    return pkt, name


def _number(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 12 else None


def honoured_options(options: dict) -> dict | Refusal:
    """The options we accept, by lower-cased name (RFC 2347), with the values to answer.

    Only what the client asked for is returned, so only that is acknowledged:
    ``blksize`` (RFC 2348; above the datagram limit it is lowered, below 8 or not a
    number the request fails with ERROR 8, as the value cannot be honoured and a
    silent fallback to 512 would surprise the client), ``tsize`` (RFC 2349; 0 here,
    the size is filled in when the file is open) and ``timeout`` (RFC 2349; a value
    outside 1..MAX_TIMEOUT is ignored, since the answer must echo it unchanged) and
    ``windowsize`` (RFC 7440; 1..65535, the answer may lower it).
    Unknown options are ignored; the first of two spellings of one name wins.
    """
    honoured: dict = {}
    for key, value in options.items():
        key, number = key.lower(), _number(value)
        if key in honoured:
            continue
        if key == "blksize":
            if number is None or number < BLKSIZE_MIN:
                return Refusal(OPTION_REFUSED, "bad blksize", f"blksize {value[:20]!r}")
            honoured[key] = min(number, BLKSIZE_MAX)
        elif key == "tsize" and number is not None:
            honoured[key] = 0
        elif key == "timeout" and number is not None and 1 <= number <= MAX_TIMEOUT:
            honoured[key] = number
        elif key == "windowsize" and number is not None and 1 <= number <= 65535:
            honoured[key] = number      # RFC 7440; lowered to what we keep in flight
    return honoured
