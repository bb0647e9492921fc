"""The tests' Ansible targets: the helpers live with the lab, which uses them too."""

from zonelab.targets import *  # noqa: F401,F403
from zonelab.targets import _die_with_parent, _serial  # noqa: F401
