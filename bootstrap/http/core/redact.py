"""What an unauthenticated reader may see: everything but hardware addresses.

MAC addresses identify machines on the wire (and let a stranger on a pod's link pose
as one); the API, the status page and their events show them only to a holder of the
API token. Hidden by key (``mac``, ``macs``, ``old_mac``, ``chaddr``, ``client_id``…)
and by shape anywhere in a text, since event details are free-form.
"""

from __future__ import annotations

import re

HIDDEN = "hidden"
MAC = re.compile(r"(?<![0-9a-f])[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}(?![0-9a-f])", re.I)
KEY = re.compile(r"(?:^|[_-])(?:macs?|chaddr|hwaddr|client[_-]?id)(?:$|[_-])", re.I)


def redact(value):
    """``value`` (JSON-like) with every MAC address replaced by ``"hidden"``."""
    if isinstance(value, str):
        return MAC.sub(HIDDEN, value)
    if isinstance(value, dict):
        return {k: (HIDDEN if v and KEY.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value
