"""Config errors name the key, the file and the fix; env overrides; secrets stay secret."""

from __future__ import annotations

import pytest

from bot.core.config import ConfigError, load_config


def write(tmp_path, text: str):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_example_config_loads(tmp_path):
    from tests.conftest import REPO

    cfg = load_config(REPO / "config.example.toml")
    assert cfg.broker.kind == "sim" and cfg.broker.live is False and cfg.data.source == "synthetic"


@pytest.mark.parametrize(
    ("text", "must"),
    [
        ("[risk]\nstop_los_pct = 0.1\n", ["risk.stop_los_pct", "Did you mean 'stop_loss_pct'", "c.toml"]),
        ("[risk]\nfraction = 2\n", ["risk.fraction", "less than or equal to 1", "got 2"]),
        ("[risk]\nfraction = 'half'\n", ["risk.fraction", "valid number"]),
        ("[data]\nsource = 'yahoo'\n", ["data.source", "'synthetic', 'csv' or 'alpaca'"]),
        ("[data]\nstart = '2021/01/01'\n", ["data.start", "YYYY-MM-DD"]),
        ("[universe]\nbull = 'SOXL'\nbear = 'SOXL'\n", ["universe", "bull and bear must differ"]),
        ("[risk]\nsizing = 'risk_per_trade'\nstop_loss_pct = 0\n", ["risk", "needs a stop"]),
        ("[brokr]\nkind = 'sim'\n", ["brokr", "unknown key", "Did you mean 'broker'"]),
        ("[risk\n", ["not valid TOML"]),
    ],
)
def test_bad_config_names_key_and_fix(tmp_path, text, must):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text))
    msg = str(exc.value)
    for m in must:
        assert m in msg, msg
    assert "Fix" in msg


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_env_overrides_file(tmp_path, monkeypatch):
    p = write(tmp_path, "[risk]\nfraction = 0.5\n")
    monkeypatch.setenv("SOXBOT_RISK__FRACTION", "0.25")
    assert load_config(p).risk.fraction == 0.25


def test_bad_env_value_names_the_key(monkeypatch):
    monkeypatch.setenv("SOXBOT_RISK__STOP_LOSS_PCT", "5")
    with pytest.raises(ConfigError, match=r"risk\.stop_loss_pct"):
        load_config()


def test_secrets_are_masked(tmp_path):
    p = write(tmp_path, "[broker]\napi_key = 'PKSECRET123'\nsecret_key = 'shhh-very-secret'\n")
    cfg = load_config(p)
    assert cfg.broker.api_key.get_secret_value() == "PKSECRET123"
    dumped = repr(cfg) + str(cfg) + cfg.model_dump_json()
    assert "PKSECRET123" not in dumped and "shhh-very-secret" not in dumped
