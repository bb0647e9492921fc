"""The DHCP service: every answer a pure function of the zone plan and the request's location.

- :mod:`.codec`: the DHCPv4 wire format (RFC 2131/2132, Option 82 sub-options, RFC 3396).
- :mod:`.answer`: the decision, in named stages, without I/O: ``Answerer(plan, Settings(...))
  .answer(packet, source)`` → ``Reply`` | ``Noted`` | ``Drop``.
- :mod:`.server`: the UDP adapter ``DhcpServer(plan, bind_address, port=67, server_id=…,
  events=EventWriter|None, tftp_server=…, http_base_url=…, dns_servers=(), workers=1)``
  with ``serve_forever()`` (blocking), ``shutdown()`` and ``close()``.
- :mod:`.probe`: request builders for tests and the benchmark.

Boot choices (the HTTP service serves exactly these paths under the controller URL):
option 93 arch 0 → ``undionly.kpxe`` over TFTP, 7/9 → ``ipxe.efi``, 6 → ``i386-efi/ipxe.efi``,
10 → ``arm32-efi/ipxe.efi``, 11 → ``arm64-efi/ipxe.efi``; vendor class ``HTTPClient`` →
``/files/<the same file for arch 15/16/18/19>`` (and option 60 ``HTTPClient`` back); user class
``iPXE`` → ``/boot/ipxe`` with 175.176 = 1; ONIE → option 114 ``/onie/<name>``; SONiC →
option 67 ``/ztp/sonic/<name>.json``; Cumulus → option 239 ``/ztp/cumulus/<name>``;
Arista → option 67 ``/ztp/arista/<name>``. A boot file in option 67 is in BOOTP's ``file``
field too when it fits; a reply never exceeds the client's option 57 (576 without it).
Events: ``lease``, ``release``, ``decline``,
``unknown-location``, ``untrusted-relay``, ``option-82-spoof``, ``relay-spoof``, ``ciaddr-spoof``,
``hardware-replaced`` (source ``dhcp``); drop events and log lines are rate-limited per
reason and sender.
Counts: ``zone_dhcp_answers_total{type=offer|ack|nak|release|decline|drop:<code>}``.
"""
