"""Configuration: TOML file, environment overrides, validation errors naming the key, hidden secrets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway.toml"
CREDS = {"ZM_RTMS_CLIENT": "cid", "ZM_RTMS_SECRET": "csecret-xyz", "ZM_RTMS_WEBHOOK_SECRET": "wsecret-xyz"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return path


def test_example_file_loads_with_credentials_from_env() -> None:
    cfg = load_config(EXAMPLE, env=CREDS)
    assert cfg.credentials.client_id == "cid"
    assert cfg.credentials.webhook_secret == "wsecret-xyz"
    assert cfg.server.timestamp_tolerance_s == 300
    assert "audio" in cfg.sessions.media_kinds


def test_toml_values_and_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, """
[server]
port = 9100
webhook_path = "/zoom"
[sessions]
max_streams = 10
media_kinds = ["audio", "transcript"]
[sessions.media_params.audio]
data_opt = 2
[publish]
shm = true
""")
    env = {**CREDS, "GATEWAY_SERVER_PORT": "9200", "GATEWAY_SESSIONS_UNIFIED": "yes", "GATEWAY_SESSIONS_MEDIA_KINDS": "audio,video"}
    cfg = load_config(path, env=env)
    assert cfg.server.port == 9200  # env beats the file
    assert cfg.server.webhook_path == "/zoom"
    assert cfg.sessions.max_streams == 10
    assert cfg.sessions.unified is True
    assert cfg.sessions.media_kinds == ("audio", "video")
    assert cfg.sessions.media_params == {"audio": {"data_opt": 2}}
    assert cfg.publish.shm is True
    params = cfg.sessions.build_media_params()
    assert params.audio is not None and params.audio.data_opt == 2 and params.transcript is None


def test_control_token_from_env_is_a_hidden_secret() -> None:
    cfg = load_config(None, env={**CREDS, "GATEWAY_CONTROL_ENABLED": "1", "GATEWAY_CONTROL_OPERATOR_TOKEN": "op-token-xyz"})
    assert cfg.control.enabled and cfg.control.operator_token.reveal() == "op-token-xyz"
    assert "op-token-xyz" not in repr(cfg)


def test_credentials_in_file_are_overridden_by_sdk_env_names(tmp_path: Path) -> None:
    path = write(tmp_path, '[credentials]\nclient_id = "file-id"\nclient_secret = "file-secret"\nwebhook_secret = "file-wh"\n')
    assert load_config(path, env={}).credentials.client_id == "file-id"
    assert load_config(path, env={"ZM_RTMS_CLIENT": "env-id"}).credentials.client_id == "env-id"


@pytest.mark.parametrize(
    ("text", "env", "key"),
    [
        ("[server]\nport = 70000\n", CREDS, "server.port"),
        ("[server]\nport = \"http\"\n", CREDS, "server.port"),
        ("[server]\nbogus = 1\n", CREDS, "server.bogus"),
        ("[nonsense]\nx = 1\n", CREDS, "[nonsense]"),
        ("[sessions]\nmedia_kinds = [\"audio\", \"smell\"]\n", CREDS, "sessions.media_kinds"),
        ("[sessions]\nmax_streams = 0\n", CREDS, "sessions.max_streams"),
        ("[sessions]\nstatus_profile = \"C\"\n", CREDS, "sessions.status_profile"),
        ("[server]\nwebhook_path = \"/metrics\"\n", CREDS, "server.webhook_path"),
        ("", {"ZM_RTMS_CLIENT": "c", "ZM_RTMS_SECRET": "s"}, "credentials.webhook_secret"),
        ("", {**CREDS, "GATEWAY_SERVER_TIMESTAMP_TOLERANCE_S": "soon"}, "server.timestamp_tolerance_s"),
        ("[log]\nlevel = \"LOUD\"\n", CREDS, "log.level"),
        ("[sessions.media_params.audio]\nsample_rate = 99\n", CREDS, "sessions.media_params.audio.sample_rate"),
        ("[publish]\nvideo_ring_bytes = 1000\n", CREDS, "publish.video_ring_bytes"),
        ("", {**CREDS, "GATEWAY_PUBLISH_AUDIO_RING_S": "0"}, "publish.audio_ring_s"),
        ("[publish]\nshm_prefix = \"a/b\"\n", CREDS, "publish.shm_prefix"),
        ("[control]\nenabled = true\n", CREDS, "control.operator_token"),
        ("[control]\nprefix = \"/metrics\"\n", CREDS, "control.prefix"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_config(write(tmp_path, text), env=env)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml", env=CREDS)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[server\n"), env=CREDS)


def test_config_is_frozen_and_secrets_hidden_in_repr() -> None:
    cfg = load_config(None, env=CREDS)
    assert isinstance(cfg, GatewayConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.server.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        load_config(EXAMPLE, env=CREDS).sessions.media_params["audio"]["data_opt"] = 1  # type: ignore[index]
    text = repr(cfg) + repr(cfg.credentials) + repr(cfg.credentials.client_secret) + f"{[cfg.credentials.webhook_secret]}"
    assert "csecret-xyz" not in text and "wsecret-xyz" not in text
    assert cfg.credentials.client_secret.reveal() == "csecret-xyz"


def test_tls_settings_are_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server.tls_cert and server.tls_key"):
        load_config(write(tmp_path, '[server]\ntls_cert = "/x.pem"\n'), env=CREDS)
    with pytest.raises(ConfigError, match=r"server.tls_cert: no such file"):
        load_config(write(tmp_path, '[server]\ntls_cert = "/nonexistent.pem"\ntls_key = "/nonexistent.key"\n'), env=CREDS)
    with pytest.raises(ConfigError, match=r"sessions.ca_file: no such file"):
        load_config(write(tmp_path, '[sessions]\nca_file = "/nonexistent-ca.pem"\n'), env=CREDS)
