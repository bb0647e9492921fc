"""What a stranger's queries can do to the DNS core: the cache key, the cache bounds,
names over 255 bytes, and the rate-limited log (issue 10 rows 9 and 11)."""

from __future__ import annotations

import logging
import struct

import pytest
from dnslib import EDNS0, EDNSOption, RCODE, DNSRecord

from bootstrap import dns
from bootstrap.dns import ReplyCache, Responder, cache_key


@pytest.fixture(scope="module")
def responder(lab_plan):
    return Responder(lab_plan)


def packed(name="p01-u01.lab1.example.net", qtype="A", edns=None, ident=1) -> bytes:
    query = DNSRecord.question(name, qtype)
    query.header.id = ident
    if edns is not None:
        query.add_ar(edns)
    return bytes(query.pack())


def header(ident=7, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, qd, an, ns, ar)


OVERSIZE_NAME = b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\x00"   # 321 bytes


# -- the cache key -----------------------------------------------------------

def test_the_id_letter_case_and_edns_cookies_make_no_new_key():
    cookie = [EDNSOption(10, bytes(range(8)))]
    same = {cache_key(packed(ident=1))[0],
            cache_key(packed("P01-u01.LAB1.example.NET", ident=2))[0]}
    assert len(same) == 1
    with_edns = {cache_key(packed(edns=EDNS0(udp_len=1232, opts=opts)))[0]
                 for opts in ([], cookie, [EDNSOption(10, b"\xff" * 8)])}
    assert len(with_edns) == 1 and same.isdisjoint(with_edns)


@pytest.mark.parametrize("other", [
    packed(qtype="AAAA"),
    packed("p01-u02.lab1.example.net"),
    packed(edns=EDNS0(udp_len=4096)),
    packed(edns=EDNS0(udp_len=1232, flags="do")),
    packed(edns=EDNS0(udp_len=1232, version=1)),
])
def test_what_the_reply_depends_on_makes_a_new_key(other):
    assert cache_key(other)[0] not in (cache_key(packed())[0],
                                       cache_key(packed(edns=EDNS0(udp_len=1232)))[0])


def test_types_whose_bytes_look_like_letters_are_not_folded():
    # type 65 (HTTPS) is the byte "A" after a zero: lower-casing it would make it type 97
    https, type97 = (header() + b"\x01a\x00" + struct.pack("!HH", t, 1) for t in (65, 97))
    assert cache_key(https)[0] != cache_key(type97)[0]


def test_the_question_end_is_returned_for_the_reply_splice():
    data = packed()
    assert cache_key(data)[1] == len(data)


@pytest.mark.parametrize("data", [
    packed() + b"\x00",                                                # trailing junk
    header() + b"\xc0\x0c\x00\x01\x00\x01",                            # a pointer
    header() + b"\x05ab",                                              # cut short
    header() + OVERSIZE_NAME + b"\x00\x01\x00\x01",                    # over 255 bytes
    header(qd=2) + b"\x01a\x00\x00\x01\x00\x01" * 2,                   # two questions
    header(an=1) + b"\x01a\x00\x00\x01\x00\x01",                       # an answer in a query
    header(ar=1) + b"\x01a\x00\x00\x01\x00\x01"                       # an A record, not OPT
    + b"\x01b\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00",
    packed(edns=EDNS0())[:-1],                                          # OPT cut short
    header(qd=0),
    b"\x00" * 11,
])
def test_anything_but_one_plain_question_has_no_key(data):
    assert cache_key(data) is None


# -- the cache ---------------------------------------------------------------

def entry(size: int) -> tuple:
    return (b"h" * 10, b"t" * size, [0])


def test_the_cache_keeps_within_its_entry_bound():
    cache = ReplyCache(entries=100, limit=10**9)
    for i in range(1000):
        cache.put((b"k%d" % i,), entry(10))
        assert len(cache) <= 100
    assert cache.get((b"k999",)) and cache.get((b"k0",)) is None


def test_the_cache_keeps_within_its_byte_bound():
    cache = ReplyCache(entries=10**9, limit=20_000)
    for i in range(1000):
        cache.put((b"k%d" % i,), entry(300))
        assert cache.size <= 20_000
    cache.put((b"huge",), entry(50_000))                  # larger than a generation: not kept
    assert cache.get((b"huge",)) is None and cache.size <= 20_000


def test_a_hit_in_the_old_generation_is_kept_when_it_is_dropped():
    cache = ReplyCache(entries=20, limit=10**9)
    cache.put((b"hot",), entry(10))
    for i in range(100):
        cache.put((b"k%d" % i,), entry(10))
        assert cache.get((b"hot",)) is not None    # asked often: never lost
    assert len(cache) <= 20


def test_an_emptied_cache_counts_nothing():
    cache = ReplyCache(entries=4, limit=10**9)
    for i in range(10):
        cache.put((b"k%d" % i,), entry(10))
    sizes = [cache._cost(k, v) for gen in (cache._young, cache._old) for k, v in gen.items()]
    assert cache.size == sum(sizes)


# -- names over 255 bytes, and the log ---------------------------------------

def test_a_question_over_255_bytes_is_formerr_with_its_id(responder):
    for udp in (True, False):
        reply, rcode = responder.answer(header(ident=9) + OVERSIZE_NAME + b"\x00\x01\x00\x01",
                                        udp=udp)
        assert rcode == "FORMERR" and reply[:2] == b"\x00\x09" and reply[3] & 0x0F == RCODE.FORMERR


def test_a_name_of_exactly_255_bytes_is_answered(responder):
    name = b"".join(b"\x3f" + b"a" * 63 for _ in range(3)) + b"\x3d" + b"a" * 61 + b"\x00"
    assert len(name) == 255
    reply, rcode = responder.answer(header() + name + b"\x00\x01\x00\x01")
    assert rcode == "REFUSED"                          # well-formed, not one of our zones


def test_malformed_queries_log_a_few_lines_not_one_each(responder, caplog, monkeypatch):
    monkeypatch.setattr(dns, "LOG_LIMIT", dns.Throttle(rate=0.0001, burst=3))
    with caplog.at_level(logging.INFO, logger="bootstrap.dns"):
        for i in range(500):
            assert responder.answer(header(ident=i) + b"\x3f" + b"x" * (i % 40))[1] == "FORMERR"
    assert len(caplog.records) == 3 and not [r for r in caplog.records if r.exc_info]
    assert dns.LOG_LIMIT.suppressed == {"dns-malformed": 497}


def test_a_query_our_answering_breaks_on_is_servfail_and_counted(lab_plan, monkeypatch):
    responder = Responder(lab_plan)

    def broken(*args, **kwargs):
        raise KeyError("a bug")
    monkeypatch.setattr(dns, "respond", broken)
    reply, rcode = responder.answer(packed(ident=5))
    assert rcode == "SERVFAIL" and reply[:2] == b"\x00\x05" and responder.failures == 1
