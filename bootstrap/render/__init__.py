"""Files derived from the plan: Ansible inventory, DNS zone files, DHCP reservations."""

from __future__ import annotations

import os

from ..plan import Plan
from . import dnszone, inventory, reservations


def render_all(plan: Plan, out: str) -> list[str]:
    """Write every rendered file under ``out``; returns the paths written."""
    os.makedirs(out, exist_ok=True)
    written = inventory.write(plan, os.path.join(out, "inventory"))
    written += dnszone.write(plan, os.path.join(out, "dns"))
    written.append(reservations.write(plan, os.path.join(out, "dhcp-reservations.json")))
    return written
