"""The DNS core without sockets: what the authority answers, and how queries become replies."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from bootstrap.dns import Authority, Responder, parse_upstream
from bootstrap.plan import compile_plan
from bootstrap.render.dnszone import zones
from bootstrap.zone import load_zone

ZONE_10K = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "zone-10k.yml")


@pytest.fixture(scope="module")
def authority(lab_plan):
    return Authority(lab_plan)


@pytest.fixture(scope="module")
def service(lab_plan):
    return Responder(lab_plan)


def ask(service, name, qtype="A", **kw) -> DNSRecord:
    query = DNSRecord.question(name, qtype)
    for key, value in kw.items():
        setattr(query.header, key, value)
    reply, _ = service.answer(query.pack())
    return DNSRecord.parse(reply)


def test_every_record_of_the_rendered_zones_is_answered(authority, lab_plan):
    for zone in zones(lab_plan).values():
        for name, rtype, value in zone.records:
            answer = authority.lookup(name, rtype)
            assert answer.rcode == RCODE.NOERROR
            assert (name.lower(), rtype, value) in answer.answer


def test_a_server_resolves_to_its_plan_address_and_back(service, lab_plan):
    node = lab_plan.nodes["p01-u03"]
    reply = ask(service, node.fqdn)
    assert [str(rr.rdata) for rr in reply.rr] == [node.address]
    assert reply.header.aa == 1
    back = ask(service, f"{'.'.join(reversed(node.address.split('.')))}.in-addr.arpa", "PTR")
    assert [str(rr.rdata) for rr in back.rr] == [node.fqdn + "."]


def test_apex_soa_and_ns_with_glue(service, lab_plan):
    domain = lab_plan.zone.domain
    soa = ask(service, domain, "SOA").rr[0].rdata
    assert str(soa.mname) == f"ns.{domain}." and soa.times[0] > 0
    ns = ask(service, domain, "NS")
    assert [str(rr.rdata) for rr in ns.rr] == [f"ns.{domain}."]
    assert [(str(rr.rname), str(rr.rdata)) for rr in ns.ar] == [(f"ns.{domain}.", "10.17.0.2")]


def test_zone_digest_txt_and_controller_srv(service, lab_plan):
    domain = lab_plan.zone.domain
    txt = ask(service, f"_zone.{domain}", "TXT").rr[0].rdata
    assert f"digest={lab_plan.zone.digest}".encode() in txt.data
    srv = ask(service, f"_http._tcp.{domain}", "SRV").rr[0].rdata
    assert (srv.port, str(srv.target)) == (8080, f"ns.{domain}.")


def test_unknown_name_is_nxdomain_with_the_zone_soa(service, lab_plan):
    reply = ask(service, f"p09-u99.{lab_plan.zone.domain}")
    assert reply.header.rcode == RCODE.NXDOMAIN and not reply.rr
    assert [QTYPE[rr.rtype] for rr in reply.auth] == ["SOA"]
    assert str(reply.auth[0].rname) == lab_plan.zone.domain + "."


def test_empty_non_terminal_and_missing_type_are_nodata(service, lab_plan):
    for name, qtype in ((f"provision.{lab_plan.zone.domain}", "A"),
                        (f"p01-u01.{lab_plan.zone.domain}", "TXT")):
        reply = ask(service, name, qtype)
        assert reply.header.rcode == RCODE.NOERROR and not reply.rr
        assert [QTYPE[rr.rtype] for rr in reply.auth] == ["SOA"]


def test_names_are_case_insensitive_and_the_question_case_is_echoed(service, lab_plan):
    name = f"P01-U01.{lab_plan.zone.domain.upper()}"
    reply = ask(service, name)
    assert str(reply.q.qname) == name + "."
    assert [str(rr.rdata) for rr in reply.rr] == [lab_plan.nodes["p01-u01"].address]


def test_other_zones_are_refused_without_forwarding(service):
    reply = ask(service, "www.example.com")
    assert reply.header.rcode == RCODE.REFUSED and reply.header.aa == 0


def test_other_classes_and_opcodes_are_not_answered(service, lab_plan):
    query = DNSRecord.question(lab_plan.zone.domain, "SOA", "CH")
    assert DNSRecord.parse(service.answer(query.pack())[0]).header.rcode == RCODE.REFUSED
    assert ask(service, lab_plan.zone.domain, opcode=2).header.rcode == RCODE.NOTIMP


@pytest.mark.parametrize("qtype", ["AXFR", "IXFR"])
def test_zone_transfers_are_refused(service, lab_plan, qtype):
    assert ask(service, lab_plan.zone.domain, qtype).header.rcode == RCODE.REFUSED


def test_edns_queries_get_an_opt_record_back(service, lab_plan):
    query = DNSRecord.question(lab_plan.nodes["p01-u01"].fqdn)
    query.add_ar(EDNS0(udp_len=4096))
    reply = DNSRecord.parse(service.answer(query.pack())[0])
    assert [rr.rtype for rr in reply.ar] == [QTYPE.OPT]


@pytest.mark.parametrize("data, expected", [
    (b"", (None, "DROPPED")),
    (b"\x00\x01", (None, "DROPPED")),
    (struct.pack("!HHHHHH", 7, 0x8000, 1, 0, 0, 0), (None, "DROPPED")),   # a response
])
def test_short_packets_and_responses_are_dropped(service, data, expected):
    assert service.answer(data) == expected


@pytest.mark.parametrize("data", [
    struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x05ab",           # name cut short
    struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",  # pointer loop
    struct.pack("!HHHHHH", 7, 0x0100, 0, 0, 0, 0),                        # no question
    struct.pack("!HHHHHH", 7, 0x0100, 2, 0, 0, 0) + (b"\x01a\x00\x00\x01\x00\x01" * 2),
])
def test_malformed_queries_get_formerr_with_their_id(service, data):
    reply, rcode = service.answer(data)
    assert rcode == "FORMERR"
    ident, flags = struct.unpack("!HH", reply[:4])
    assert ident == 7 and flags & 0x8000 and flags & 0x0F == RCODE.FORMERR


def test_a_large_answer_over_plain_udp_is_truncated(lab_plan):
    service = Responder(lab_plan)
    name = f"big.{lab_plan.zone.domain}"
    for i in range(40):
        service.authority.add(name, "A", f"10.99.0.{i}")
    query = DNSRecord.question(name).pack()
    udp = DNSRecord.parse(service.answer(query, udp=True)[0])
    tcp = DNSRecord.parse(service.answer(query, udp=False)[0])
    assert udp.header.tc == 1 and not udp.rr
    assert tcp.header.tc == 0 and len(tcp.rr) == 40


def test_upstream_text_forms():
    assert parse_upstream("192.0.2.53") == ("192.0.2.53", 53)
    assert parse_upstream("127.0.0.1:5353") == ("127.0.0.1", 5353)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_get_a_reply_or_a_drop_never_an_exception(lab_plan, data):
    reply, rcode = Responder(lab_plan).answer(data)
    assert reply is None or (isinstance(reply, bytes) and reply[:2] == data[:2])
    assert isinstance(rcode, str)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=12, max_size=80))
def test_mutated_good_queries_never_raise(lab_plan, tail):
    good = DNSRecord.question(lab_plan.nodes["p01-u01"].fqdn).pack()
    data = good[:12] + bytes(a ^ b for a, b in zip(good[12:], tail)) + tail[len(good) - 12:]
    reply, _ = Responder(lab_plan).answer(data)
    assert reply is None or reply[:2] == good[:2]


def test_the_10k_zone_answers_its_last_pod_both_ways():
    plan = compile_plan(load_zone(ZONE_10K))
    authority = Authority(plan)
    last = [n for n in plan.servers() if n.pod == "p250"][-1]
    assert authority.lookup(last.fqdn, "A").answer == [(last.fqdn, "A", last.address)]
    rev = ".".join(reversed(last.address.split("."))) + ".in-addr.arpa"
    assert authority.lookup(rev, "PTR").answer == [(rev, "PTR", last.fqdn)]
    records = [r for zone in zones(plan).values() for r in zone.records]
    for name, rtype, value in records[::997]:
        assert (name, rtype, value) in authority.lookup(name, rtype).answer
