"""RFC 7440 windowed sending: up to ``size`` DATA blocks per ACK.

Blocks are numbered absolutely here (a transfer may pass block 65535); the wire
carries the low 16 bits. Nothing is buffered: a resend seeks back in the file and
reads again, so a window costs no memory however large the blocks.
"""

from __future__ import annotations

import struct

DATA = 3
HEAD = struct.Struct("!HH")     # opcode, block number
MAX_WINDOW = 64                 # blocks in flight; a client asking more gets this


class Window:
    """What has been sent and acknowledged of one file, and the next blocks to send."""

    def __init__(self, fileobj, blksize: int, size: int, send):
        self.fileobj, self.blksize, self.size, self.send = fileobj, blksize, size, send
        self.acked = 0          # the last block acknowledged (0: the OACK)
        self.sent = 0           # the last block sent
        self.last = None        # the final (short) block, once read

    @property
    def done(self) -> bool:
        return self.last is not None and self.acked >= self.last

    def on_ack(self, wire_block: int) -> bool:
        """An ACK from the peer: send on from the block after it (a gap the peer saw
        or a full window); False if it acknowledges nothing new or unsent."""
        ack = self.sent - ((self.sent - wire_block) & 0xFFFF)
        if ack < self.acked:
            return False        # older than what the peer already acknowledged
        self.acked = ack
        if not self.done:
            self.send_from(ack + 1)
        return True

    def resend(self) -> None:
        """The peer went quiet: the window again from the first block not acknowledged."""
        self.send_from(self.acked + 1)

    def send_from(self, first: int) -> None:
        self.fileobj.seek((first - 1) * self.blksize)
        block = first
        while block <= self.acked + self.size and (self.last is None or block <= self.last):
            data = self.fileobj.read(self.blksize)
            if len(data) < self.blksize:
                self.last = block
            self.send(HEAD.pack(DATA, block & 0xFFFF) + data)
            block += 1
        self.sent = max(self.sent, block - 1)
