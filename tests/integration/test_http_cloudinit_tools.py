"""What we serve as NoCloud data is what real cloud-init (Debian's) accepts and renders."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bootstrap.http import create_app
from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone, parse_zone_text
from http_peers import LAB

pytestmark = pytest.mark.skipif(shutil.which("cloud-init") is None,
                                reason="Debian cloud-init (in .ci/apt-packages.txt) not installed")


KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIEdtrq+BamXi3qOgNK2cDHqCGuseKM/EgNRa+l73yr0 "
       "ops@example")
SITE = (f'site: {{ssh_authorized_keys: ["{KEY}"], nics: [ens1f0, ens1f1], '
        "bond_mode: active-backup}\n")


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    """p01-u03's four NoCloud files, fetched from the app as the node itself."""
    return fetch_seed(compile_plan(load_zone(LAB)), tmp_path_factory.mktemp("nocloud"))


@pytest.fixture(scope="module")
def site_seed(tmp_path_factory):
    """The same with a site: section (SSH keys, NIC names, bond mode)."""
    with open(LAB, encoding="utf-8") as fh:
        text = fh.read().replace("naming:", SITE + "naming:", 1)
    return fetch_seed(compile_plan(parse_zone_text(text, LAB)), tmp_path_factory.mktemp("site"))


def fetch_seed(plan, folder):
    store = Store(":memory:")
    store.seed(plan)
    client = create_app(plan, store, {"NODE_SECRET": "x"}).test_client()
    for part in ("meta-data", "user-data", "vendor-data", "network-config"):
        r = client.get(f"/cloud-init/p01-u03/{part}", environ_base={"REMOTE_ADDR": "10.17.1.13"})
        assert r.status_code == 200
        (folder / part).write_bytes(r.data)
    return folder


@pytest.mark.parametrize("part", ["user-data", "vendor-data"])
def test_cloud_config_passes_cloud_init_schema(seed, part):
    out = subprocess.run(["cloud-init", "schema", "--config-file", str(seed / part)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Valid cloud-config" in out.stdout


def test_network_config_renders_a_bond_over_both_nics(seed, tmp_path):
    out = subprocess.run(
        ["cloud-init", "devel", "net-convert", "-p", str(seed / "network-config"), "-k", "yaml",
         "-d", str(tmp_path), "-D", "debian", "-O", "eni",
         "-m", "eno1,52:54:00:00:03:01", "-m", "eno2,52:54:00:00:03:02"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    eni = (tmp_path / "etc" / "network" / "interfaces.d" / "50-cloud-init").read_text()
    for nic in ("eno1", "eno2"):
        assert f"iface {nic} inet manual\n" in eni
    assert eni.count("bond-master bond0") == 2 and "bond-mode 802.3ad" in eni
    assert "iface bond0 inet static\n    address 10.17.1.13/24" in eni
    assert "address 10.18.1.13/24" in eni and "route add default gw 10.17.1.1" in eni


def test_site_keys_reach_a_valid_user_data(site_seed):
    """The site's SSH keys land in cloud-init's ssh_authorized_keys, and cloud-init itself
    accepts the result."""
    import yaml

    user = yaml.safe_load((site_seed / "user-data").read_text())
    assert user["ssh_authorized_keys"] == [KEY]
    out = subprocess.run(["cloud-init", "schema", "--config-file", str(site_seed / "user-data")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Valid cloud-config" in out.stdout, out.stdout + out.stderr


def test_site_nics_and_bond_mode_render(site_seed, tmp_path):
    out = subprocess.run(
        ["cloud-init", "devel", "net-convert", "-p", str(site_seed / "network-config"), "-k",
         "yaml", "-d", str(tmp_path), "-D", "debian", "-O", "eni",
         "-m", "ens1f0,52:54:00:00:03:01", "-m", "ens1f1,52:54:00:00:03:02"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    eni = (tmp_path / "etc" / "network" / "interfaces.d" / "50-cloud-init").read_text()
    assert "iface ens1f0 inet manual\n" in eni and "iface ens1f1 inet manual\n" in eni
    assert "bond-mode active-backup" in eni and "lacp" not in eni
