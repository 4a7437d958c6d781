"""The environment every `pnc` command test runs in: its own data directory and key passphrase, ISO 15118-20 off
(test modules that need more extend this ``env``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PNC_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PNC_KEY_PASSPHRASE", "cli-test-pass")
    monkeypatch.setenv("PNC_WITH_ISO15118_20", "false")
    return tmp_path
