"""The tests' Redfish peer: the emulator helpers live with the lab, which uses them too."""

from bootstrap.lab.bmc_emulator import *  # noqa: F401,F403
from bootstrap.lab.bmc_emulator import _ACCESS, _ANSI  # noqa: F401
