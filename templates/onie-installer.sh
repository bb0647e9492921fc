#!/bin/sh
# {{ zone.name }}: ONIE answer for {{ node.name }} ({{ node.role }}, boots by {{ node.ztp }}).
# No NOS installer is under /files/onie/ for it yet: fail, so ONIE keeps discovering
# and fetches this URL again later.
echo "{{ zone.name }}: no NOS installer for {{ node.name }} yet (put onie/{{ node.role }}.bin under the files root)"
exit 1
