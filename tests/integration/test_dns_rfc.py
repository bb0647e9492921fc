"""EDNS by the RFCs against two real resolvers' query tools on 127.0.0.1: ``dig``
(bind9-dnsutils) and ``kdig`` (knot-dnsutils). BADVERS for EDNS version 1 (RFC 6891),
DO echoed (RFC 3225), and TC on UDP with the whole answer over TCP (RFC 1035/6891/7766)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from bootstrap.dns import DnsService

RECORDS = 120           # A records of one name: ~1.9 kB, beyond any UDP reply we send
PEERS = {"dig": ["+tries=1", "+time=3"], "kdig": ["+retry=0", "+time=3"]}


@pytest.fixture(scope="module")
def big_name(lab_plan) -> str:
    return f"big.{lab_plan.zone.domain}"


@pytest.fixture(scope="module")
def dns(lab_plan, big_name):
    """The lab zone plus one name with a large answer (no lab name has one)."""
    service = DnsService(lab_plan, "127.0.0.1", 0)
    for i in range(RECORDS):
        service.authority.add(big_name, "A", f"10.99.0.{i}")
    service.start()
    yield service
    service.stop()


@pytest.fixture(params=sorted(PEERS))
def query(request, dns):
    """Run the peer tool (dig or kdig) against the service; its stdout and stderr, joined."""
    tool = request.param
    if not shutil.which(tool):
        pytest.skip(f"{tool} not installed (.ci/apt-packages.txt)")

    def run(*args) -> str:
        result = subprocess.run([tool, "@127.0.0.1", "-p", str(dns.port), *PEERS[tool], *args],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr
    run.tool = tool
    return run


def status(output: str) -> str:
    return re.search(r"status: (\w+)", output).group(1)


def flags(output: str) -> set[str]:
    """The header flags (dig ``flags:``, kdig ``Flags:``)."""
    return set(re.search(r"^;; flags: ([\w ]*);", output, re.M | re.I).group(1).split())


def edns_flags(output: str) -> set[str]:
    """The OPT record's flags as the tool prints them (dig ``EDNS: version: 0, flags: do;``,
    kdig ``Version: 0; flags: do;``)."""
    return set(re.search(r"version: 0[,;] flags: ?([\w ]*);", output, re.I).group(1).split())


def addresses(output: str) -> list[str]:
    """The addresses of the answer's A records (lines ``name TTL IN A address``)."""
    return re.findall(r"^[^;\s]\S*[ \t]+\d+[ \t]+IN[ \t]+A[ \t]+(\S+)$", output, re.M)


def test_edns_version_1_gets_badvers_and_no_answer(query, lab_plan):
    # dig by default answers BADVERS by asking again with version 0; here it must not
    extra = ["+noednsnegotiation"] if query.tool == "dig" else []
    out = query("+edns=1", *extra, lab_plan.nodes["p01-u01"].fqdn)
    assert status(out) == "BADVERS"
    assert re.search(r"ANSWER: 0\b", out) and not addresses(out)
    assert edns_flags(out) == set()                  # our OPT: version 0, no DO asked


def test_dig_negotiates_down_to_version_0_after_badvers(dns, lab_plan):
    node = lab_plan.nodes["p01-u01"]
    result = subprocess.run(["dig", "@127.0.0.1", "-p", str(dns.port), "+tries=1", "+time=3",
                             "+edns=1", node.fqdn], capture_output=True, text=True, timeout=30)
    assert "BADVERS, retrying with EDNS version 0" in result.stdout + result.stderr
    assert status(result.stdout) == "NOERROR" and addresses(result.stdout) == [node.address]


def test_the_do_bit_is_echoed_without_signatures(query, lab_plan):
    node = lab_plan.nodes["p01-u01"]
    out = query("+dnssec", node.fqdn)
    assert "do" in edns_flags(out) and addresses(out) == [node.address]
    assert "RRSIG" not in out
    assert "do" not in edns_flags(query("+bufsize=1232", node.fqdn))   # EDNS without DO


@pytest.mark.parametrize("edns", [["+noedns"], ["+bufsize=4096"]])
def test_a_large_answer_is_truncated_on_udp(query, big_name, edns):
    # +bufsize=4096: the client may take 4096 bytes, but we send at most 1232 over UDP
    out = query("+ignore", *edns, big_name)
    assert "tc" in flags(out) and not addresses(out)


@pytest.mark.parametrize("edns", [["+noedns"], ["+bufsize=4096"], []])
def test_a_truncated_answer_arrives_whole_over_tcp(query, big_name, edns):
    out = query(*edns, big_name)
    assert re.search(r"truncated", out, re.I)          # the tool saw TC and went to TCP
    assert sorted(addresses(out)) == sorted(f"10.99.0.{i}" for i in range(RECORDS))
    assert "tc" not in flags(out)
