"""The workstation zone's Vagrantfile is valid for the libvirt provider."""

from __future__ import annotations

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_vagrant_validate():
    env = dict(os.environ, VAGRANT_DEFAULT_PROVIDER="libvirt", VAGRANT_CHECKPOINT_DISABLE="1",
               ZONE_UNITS="4")
    result = subprocess.run(["vagrant", "validate"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout
