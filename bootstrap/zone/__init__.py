"""The zone file, in layers that import one way: :mod:`.model` (the frozen dataclasses)
← :mod:`.parse` (YAML source → model, every problem with its line) and :mod:`.checks`
(rules that need the whole model) ← :mod:`.load` (read a file, parse, check).

Callers import from here: ``from bootstrap.zone import load_zone, Zone``.
"""

from .load import build_zone, load_zone, parse_zone_text
from .model import DEFAULT_SERVES, KINDS, LEARNED, SERVES, ZTP_KINDS, Addressing, \
    BmcCredentials, DhcpSettings, Firmware, Image, Network, Pod, Redfish, Role, SwitchSpec, \
    UpSettings, Zone

__all__ = ["build_zone", "load_zone", "parse_zone_text", "DEFAULT_SERVES", "KINDS", "LEARNED",
           "SERVES", "ZTP_KINDS", "Addressing", "BmcCredentials", "DhcpSettings", "Firmware",
           "Image", "Network", "Pod", "Redfish", "Role", "SwitchSpec", "UpSettings", "Zone"]
