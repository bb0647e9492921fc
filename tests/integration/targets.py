"""The tests' Ansible targets: the helpers live with the lab, which uses them too."""

from bootstrap.lab.targets import *  # noqa: F401,F403
from bootstrap.lab.targets import _die_with_parent, _serial  # noqa: F401
