#!/bin/bash
# CUMULUS-AUTOPROVISIONING
# {{ zone.name }}: zero-touch provisioning of {{ node.name }} ({{ node.role }}), generated from the zone file
set -euo pipefail
{% set mgmt = subnets[node.network] %}
NAME={{ node.name|shquote }}
MGMT={{ mgmt.with_prefix|shquote }}
GATEWAY={{ mgmt.gateway|shquote }}
echo "{{ zone.name }}: provisioning $NAME ($MGMT)"
if command -v nv >/dev/null; then
  nv set system hostname "$NAME"
  nv set interface eth0 ip address "$MGMT"
  nv set interface eth0 ip gateway "$GATEWAY"
{% for server in zone.ntp %}
  nv set service ntp mgmt server {{ server|shquote }}
{% endfor %}
  nv config apply --assume-yes
else
  hostnamectl set-hostname "$NAME"
fi
exit 0
