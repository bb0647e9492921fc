"""Redfish: BMC discovery, firmware baseline and rolling updates, one-time PXE boot.

Layers, bottom up: :mod:`.client` (HTTP over the DMTF ``redfish`` library, the
one error mapping in :mod:`.errors`), modules that mirror the Redfish tree
(:mod:`.systems`, :mod:`.managers`, :mod:`.update_service`, :mod:`.tasks`),
pure logic (:mod:`.catalog`, :mod:`.rollout`, :func:`.fleet.stagger`), and the
flows in :mod:`.fleet`.
"""
