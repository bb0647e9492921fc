#!/bin/sh
# The lab's stand-in for a server's firmware, iPXE and installer: DHCP as iPXE would
# (user class iPXE), fetch the per-node iPXE script, fetch the node's own NoCloud data,
# then phone home as cloud-init does. Runs inside the unit's network namespace.
set -eu
state=${1:?state dir}
mkdir -p "$state"
hook="$(dirname "$0")/udhcpc-hook.sh"
STATE=$state busybox udhcpc -i eth0 -f -q -n -t 20 -T 1 -s "$hook" \
    -x 0x4d:69505845 -V PXEClient:Arch:00000:UNDI:002001 -O bootfile >"$state/udhcpc.log" 2>&1
. "$state/lease"
url=${bootfile:-${boot_file:-}}
[ -n "$url" ] || { echo "no boot URL in the lease" >&2; exit 3; }
curl -fsS --retry 5 --retry-connrefused -o "$state/boot.ipxe" "$url"
seed=$(sed -n 's/.*s=\(http[^ ;]*\/\).*/\1/p' "$state/boot.ipxe" | head -n1)
[ -n "$seed" ] || { echo "no NoCloud seed in the iPXE script" >&2; exit 4; }
for part in meta-data user-data network-config; do
    curl -fsS --retry 5 -o "$state/$part" "$seed$part"
done
host=${hostname:-$(sed -n 's/^local-hostname: *//p' "$state/meta-data" | tr -d '"')}
curl -fsS --retry 5 -X POST --data-urlencode "hostname=$host" \
    --data-urlencode "instance_id=lab-$host" \
    --data-urlencode "pub_key_ed25519=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI$host lab" \
    "${seed%cloud-init/*}phone-home/$host" > "$state/phone-home"
echo "installed $host"
