"""EDNS by the RFCs without sockets: BADVERS (RFC 6891), DO echoed (RFC 3225), and the UDP
size a reply must fit (RFC 1035/6891), on dnslib-built queries."""

from __future__ import annotations

import pytest
from dnslib import EDNS0, QTYPE, DNSRecord

from bootstrap.dns import UDP_REPLY_MAX, Responder


@pytest.fixture(scope="module")
def responder(lab_plan):
    return Responder(lab_plan)


@pytest.fixture(scope="module")
def big(lab_plan):
    """A responder with one name whose A answer (120 records) exceeds every UDP limit."""
    responder = Responder(lab_plan)
    name = f"big.{lab_plan.zone.domain}"
    for i in range(120):
        responder.authority.add(name, "A", f"10.99.0.{i}")
    return responder, name


def ask(responder, name, udp=True, **edns) -> tuple[DNSRecord, str]:
    query = DNSRecord.question(name)
    query.add_ar(EDNS0(**edns))
    reply, rcode = responder.answer(query.pack(), udp=udp)
    return DNSRecord.parse(reply), rcode


def opt_of(reply: DNSRecord):
    [opt] = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
    return opt


@pytest.mark.parametrize("version", [1, 255])
def test_an_edns_version_above_0_is_badvers_with_our_version_0_opt(responder, lab_plan, version):
    node = lab_plan.nodes["p01-u01"]
    reply, rcode = ask(responder, node.fqdn, udp_len=1232, version=version)
    opt = opt_of(reply)
    assert rcode == "BADVERS"
    assert (opt.ttl >> 24) << 4 | reply.header.rcode == 16     # extended RCODE 16
    assert (opt.ttl >> 16) & 0xFF == 0
    assert not reply.rr and not reply.auth and reply.q.qname == node.fqdn


def test_badvers_comes_before_refusing_other_zones(responder):
    assert ask(responder, "www.example.com", version=1)[1] == "BADVERS"


def test_version_0_is_answered(responder, lab_plan):
    node = lab_plan.nodes["p01-u01"]
    reply, rcode = ask(responder, node.fqdn, udp_len=1232)
    assert rcode == "NOERROR" and [str(rr.rdata) for rr in reply.rr] == [node.address]


@pytest.mark.parametrize("flags, do", [("do", 0x8000), ("", 0)])
def test_the_do_bit_is_echoed_and_nothing_signed(responder, lab_plan, flags, do):
    reply, _ = ask(responder, lab_plan.nodes["p01-u01"].fqdn, udp_len=1232, flags=flags)
    assert opt_of(reply).ttl & 0x8000 == do
    assert QTYPE.RRSIG not in [rr.rtype for rr in reply.rr + reply.auth + reply.ar]


def test_do_is_echoed_on_refusals_too(responder):
    reply, rcode = ask(responder, "www.example.com", flags="do")
    assert rcode == "REFUSED" and opt_of(reply).ttl & 0x8000


@pytest.mark.parametrize("advertised", [4096, 65535])
def test_a_udp_reply_never_exceeds_our_maximum_whatever_the_client_advertises(big, advertised):
    responder, name = big
    reply, _ = ask(responder, name, udp_len=advertised, flags="do")
    assert reply.header.tc == 1 and not reply.rr and len(reply.pack()) <= UDP_REPLY_MAX
    assert opt_of(reply).ttl & 0x8000                           # the truncated reply keeps DO
    full, _ = ask(responder, name, udp=False, udp_len=advertised)
    assert full.header.tc == 0 and len(full.rr) == 120


def test_an_advertised_size_below_512_counts_as_512(lab_plan, big):
    responder, _ = big
    reply, _ = ask(responder, lab_plan.nodes["p01-u01"].fqdn, udp_len=100)
    assert reply.header.tc == 0 and len(reply.rr) == 1


def test_two_opt_records_are_formerr(responder, lab_plan):
    query = DNSRecord.question(lab_plan.nodes["p01-u01"].fqdn)
    query.add_ar(EDNS0(udp_len=1232))
    query.add_ar(EDNS0(udp_len=4096))
    assert responder.answer(query.pack())[1] == "FORMERR"
