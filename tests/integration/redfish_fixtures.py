"""The tests' Redfish peer: the emulator helpers live with the lab, which uses them too."""

from zonelab.bmc_emulator import *  # noqa: F401,F403
from zonelab.bmc_emulator import _ACCESS, _ANSI  # noqa: F401
