"""RFC 7440 windows: block numbers across the 16-bit wrap, gaps and timeouts."""

import io
import struct

from bootstrap.tftp.window import Window


def window(size_blocks: int, blksize: int = 8, size: int = 4):
    sent = []
    data = bytes(range(256)) * (size_blocks * blksize // 256 + 1)
    w = Window(io.BytesIO(data[:size_blocks * blksize + 3]), blksize, size,
               lambda packet: sent.append(struct.unpack("!HH", packet[:4])[1]))
    return w, sent


def test_acks_across_the_wrap_move_the_window_on():
    w, sent = window(70000)
    w.acked = w.sent = 65534
    w.send_from(65535)
    assert sent == [65535, 0, 1, 2]             # absolute 65535..65538
    sent.clear()
    assert w.on_ack(1)                          # absolute 65537: a gap after it
    assert sent == [2, 3, 4, 5] and w.acked == 65537


def test_an_old_ack_is_ignored_and_a_timeout_resends_the_window():
    w, sent = window(100)
    w.on_ack(0)
    w.on_ack(4)
    sent.clear()
    assert not w.on_ack(2)
    assert sent == []
    w.resend()
    assert sent == [5, 6, 7, 8]


def test_the_short_block_ends_the_transfer_once_acknowledged():
    w, sent = window(5)                         # 5 full blocks and 3 bytes: 6 blocks
    w.on_ack(0)
    w.on_ack(4)
    assert sent[-2:] == [5, 6] and not w.done
    w.on_ack(6)
    assert w.done
