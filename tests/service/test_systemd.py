"""`imgsearch service install/uninstall`: the unit it writes and the systemctl calls it makes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imgsearch.errors import ConfigError
from imgsearch.service import systemd
from imgsearch.settings import Settings


class FakeSystemctl:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, cmd: list[str]) -> subprocess.CompletedProcess:
        self.calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="active\n", stderr="")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(systemd.shutil, "which", lambda name: f"/usr/bin/{name}")
    return Settings(home=tmp_path / "data", models="tiny")


def test_install_writes_an_enabled_user_unit_that_runs_watch(settings: Settings, tmp_path: Path) -> None:
    fake = FakeSystemctl()
    lines = systemd.install(settings, [tmp_path / "Photos"], run=fake)
    unit = tmp_path / "config" / "systemd" / "user" / "imgsearch-tiny.service"
    text = unit.read_text()
    assert f"ExecStart={sys.executable} -m imgsearch.cli.app watch {tmp_path / 'Photos'}" in text
    assert f"Environment=IMGSEARCH_HOME={tmp_path / 'data'}" in text and "IMGSEARCH_MODELS=tiny" in text
    assert "WantedBy=default.target" in text
    assert fake.calls == [["systemctl", "--user", "daemon-reload"],
                          ["systemctl", "--user", "enable", "--now", "imgsearch-tiny.service"]]
    assert any("undo: imgsearch service uninstall" in line for line in lines)
    assert systemd.unit_state(settings, run=fake).endswith("; active")


def test_uninstall_disables_and_removes_it(settings: Settings, tmp_path: Path) -> None:
    fake = FakeSystemctl()
    systemd.install(settings, [], run=fake)
    systemd.uninstall(settings, run=fake)
    assert not systemd.unit_path(settings).exists()
    assert ["systemctl", "--user", "disable", "--now", "imgsearch-tiny.service"] in fake.calls
    with pytest.raises(ConfigError):
        systemd.uninstall(settings, run=fake)


def test_without_systemctl_the_unit_is_written_and_the_user_told(settings: Settings, monkeypatch) -> None:
    monkeypatch.setattr(systemd.shutil, "which", lambda name: None)
    lines = systemd.install(settings, [], run=FakeSystemctl())
    assert systemd.unit_path(settings).exists()
    assert any("systemctl is not on this machine" in line for line in lines)
