#!/usr/bin/env python3
# {{ zone.name }}: Arista ZTP bootstrap of {{ node.name }} ({{ node.role }}), generated from the zone file.
# EOS runs this script once; it writes the startup-config and EOS reboots into it.
{% set mgmt = subnets[node.network] %}
STARTUP_CONFIG = "/mnt/flash/startup-config"
LINES = [
    "hostname " + {{ node.name|tojson }},
    "ip domain-name " + {{ zone.domain|tojson }},
    "interface Management1",
    "   ip address " + {{ mgmt.with_prefix|tojson }},
    "ip route 0.0.0.0/0 " + {{ mgmt.gateway|tojson }},
{% for server in zone.ntp %}
    "ntp server " + {{ server|tojson }},
{% endfor %}
{% for server in zone.dns %}
    "ip name-server " + {{ server|tojson }},
{% endfor %}
]

with open(STARTUP_CONFIG, "w") as fh:
    fh.write("\n".join(LINES) + "\n")
print("{{ zone.name }}: wrote", STARTUP_CONFIG, "for", {{ node.name|tojson }})
