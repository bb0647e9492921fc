"""``zone configure``: bad input exits 2 before anything runs."""

from __future__ import annotations

import os

from bootstrap.cli import main


def test_missing_extra_inventory_is_bad_input(lab_plan, tmp_path, capsys):
    state = tmp_path / "state" / "zone.db"
    rc = main(["configure", lab_plan.zone.source, "--pod", "p01", "--state", str(state),
               "--inventory", str(tmp_path / "nope.yml")])
    assert rc == 2
    assert "nope.yml: no such file" in capsys.readouterr().err
    assert not os.path.exists(state)


def test_unknown_pod_and_bad_bound_are_bad_input(lab_plan, tmp_path, capsys):
    state = str(tmp_path / "zone.db")
    assert main(["configure", lab_plan.zone.source, "--pod", "p99", "--state", state]) == 2
    assert "--pod p99: no such pod" in capsys.readouterr().err
    assert main(["configure", lab_plan.zone.source, "--max-parallel", "0", "--state", state]) == 2


def test_up_takes_the_same_ansible_arguments(lab_plan, tmp_path, capsys):
    """zone up: --inventory/--playbooks as zone configure, checked before anything runs."""
    import pytest

    with pytest.raises(SystemExit):
        main(["up", "--help"])
    help_text = capsys.readouterr().out
    assert "--inventory PATH" in help_text and "--playbooks DIR" in help_text
    state = tmp_path / "state" / "zone.db"
    for command in ("up", "configure"):
        rc = main([command, lab_plan.zone.source, "--state", str(state),
                   "--playbooks", str(tmp_path / "nowhere")])
        assert rc == 2
        assert "nowhere: no such directory" in capsys.readouterr().err
    assert main(["up", lab_plan.zone.source, "--state", str(state),
                 "--inventory", str(tmp_path / "nope.yml")]) == 2
    assert "nope.yml: no such file" in capsys.readouterr().err
    assert not os.path.exists(state)
