#!/bin/sh
# The lab's stand-in for a switch's ZTP / ONIE client: DHCP on the management port, then
# fetch what the answer points at (SONiC/Arista: option 67, ONIE: option 114, Cumulus:
# option 239), as the switch's own provisioning agent would. Runs in the switch's namespace.
set -eu
state=${1:?state dir}
mkdir -p "$state"
hook="$(dirname "$0")/udhcpc-hook.sh"
STATE=$state busybox udhcpc -i eth0 -f -q -n -t 20 -T 1 -s "$hook" -O bootfile -O 114 -O 239 \
    >"$state/udhcpc.log" 2>&1
. "$state/lease"
# busybox hands options it has no name for (114, 239) over as hex
hex=${opt114:-${opt239:-}}
[ -n "$hex" ] && hex=$(python3 -c 'import sys; print(bytes.fromhex(sys.argv[1]).decode())' "$hex")
url=${bootfile:-${url:-$hex}}
[ -n "$url" ] || { echo "no provisioning URL in the lease" >&2; exit 3; }
curl -fsS --retry 5 --retry-connrefused -o "$state/provision" "$url"
echo "provisioned ${hostname:-switch} from $url"
