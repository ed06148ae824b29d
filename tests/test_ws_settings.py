"""The WebSocket transport settings: which uvicorn protocol serves, with or without
permessage-deflate, and that ``serve`` hands both to uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn

from app.__main__ import main
from app.settings import Settings, SettingsError
from app.shutdown import GracefulServer
from app.ws_protocol import LeanWSProtocol


def test_the_default_transport_is_wsproto_without_deflate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WS_IMPLEMENTATION", raising=False)
    monkeypatch.delenv("WS_PERMESSAGE_DEFLATE", raising=False)
    settings = Settings.from_env()
    assert settings.ws_implementation == "wsproto"
    assert settings.ws_permessage_deflate is False


def test_the_transport_is_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WS_IMPLEMENTATION", "websockets-sansio")
    monkeypatch.setenv("WS_PERMESSAGE_DEFLATE", "1")
    settings = Settings.from_env()
    assert settings.ws_implementation == "websockets-sansio"
    assert settings.ws_permessage_deflate is True


def test_an_unknown_transport_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WS_IMPLEMENTATION", "granian")
    with pytest.raises(SettingsError, match="WS_IMPLEMENTATION"):
        Settings.from_env()


def served_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> uvicorn.Config:
    """What ``python -m app serve`` hands uvicorn (without running it)."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'ws.db'}")
    configs: list[uvicorn.Config] = []

    def run(self: GracefulServer, *args: Any, **kwargs: Any) -> None:
        configs.append(self.config)

    monkeypatch.setattr(GracefulServer, "run", run)
    assert main(["serve", "--port", "0"]) == 0
    [config] = configs
    return config


def test_serve_hands_the_transport_settings_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WS_IMPLEMENTATION", "websockets-sansio")
    monkeypatch.setenv("WS_PERMESSAGE_DEFLATE", "1")
    config = served_config(monkeypatch, tmp_path)
    assert config.ws == "websockets-sansio"
    assert config.ws_per_message_deflate is True


def test_wsproto_is_served_by_the_lean_protocol(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WS_IMPLEMENTATION", raising=False)
    config = served_config(monkeypatch, tmp_path)
    assert config.ws is LeanWSProtocol
