"""Plugin discovery, construction errors a user can act on, and scaffolding a new plugin."""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import strategies
from bot.signals import plugins
from bot.signals.plugins import PluginError, PluginWarning, available, create, describe_params, scaffold
from bot.signals.strategy import Strategy
from strategies.ma_cross import MaCross
from strategies.rsi import RsiReversion
from strategies.support import SupportResistance
from tests.ta_reference import bars_from_returns

BUILT_INS = {"ma_cross": MaCross, "rsi": RsiReversion, "support": SupportResistance}


def test_builtins_are_discovered_and_registered_as_entry_points() -> None:
    found = available()
    for name, cls in BUILT_INS.items():
        assert found[name] is cls
    eps = {ep.name: ep.value for ep in entry_points(group=plugins.ENTRY_POINT_GROUP)}
    assert eps == {n: f"{c.__module__}:{c.__name__}" for n, c in BUILT_INS.items()}
    assert "my_strategy" not in found  # the template (a _-module) is not a plugin


def test_create_builds_with_params() -> None:
    s = create("rsi", {"length": 10, "exit_mid": True})
    assert isinstance(s, RsiReversion) and s.params.length == 10 and s.params.exit_mid


@pytest.mark.parametrize(
    ("name", "params", "key", "needles"),
    [
        ("ma_cros", {}, "", ["unknown strategy", "'ma_cross'", "ma_cross, rsi, support"]),
        ("ma_cross", {"fats": 5}, "fats", ["params.fats", "unknown parameter", "'fast'", "fast, slow, kind"]),
        ("ma_cross", {"kind": "wma"}, "kind", ["params.kind", "'sma' or 'ema'", "'wma'"]),
        ("ma_cross", {"fast": 60}, "slow", ["params.slow", "must be greater than fast (60)"]),
        ("rsi", {"oversold": 80}, "overbought", ["params.overbought", "greater than oversold (80)"]),
        ("rsi", {"overbought": 45, "exit_mid": True, "oversold": 20}, "exit_mid", ["oversold < 50 <"]),
        ("rsi", {"length": "fourteen"}, "length", ["params.length", "integer", "RSI length"]),
        ("support", {"pivot": 8, "lookback": 8}, "lookback", ["params.lookback", "must exceed pivot (8)"]),
        ("support", {"band": 0}, "band", ["params.band", "greater than 0", "percent"]),
    ],
)
def test_parameter_errors_name_the_strategy_the_key_and_the_choices(name, params, key, needles) -> None:
    with pytest.raises(PluginError) as err:
        create(name, params)
    msg = str(err.value)
    assert msg.startswith(f"strategy {name!r}: ")
    assert err.value.key == key and err.value.strategy == name
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_describe_params_lists_every_parameter_with_its_default() -> None:
    for cls in BUILT_INS.values():
        rows = describe_params(cls)
        defaults = cls.Params().model_dump()
        assert [r[0] for r in rows] == list(defaults)
        for pname, ptype, default, desc in rows:
            assert default == defaults[pname] and ptype and desc
    kinds = {r[0]: r[1] for r in describe_params(MaCross)}
    assert kinds["fast"] == "int" and "'sma'" in kinds["kind"] and "'ema'" in kinds["kind"]


def test_scaffold_writes_a_working_plugin_found_from_an_extra_path(tmp_path: Path) -> None:
    path = scaffold("my_breakout", tmp_path)
    assert path == tmp_path / "my_breakout.py"
    text = path.read_text()
    assert "class MyBreakout(Strategy)" in text and 'name = "my_breakout"' in text
    assert "MyStrategy" not in text and "my_strategy" not in text
    found = available([tmp_path])
    cls = found["my_breakout"]
    assert cls.__name__ == "MyBreakout" and issubclass(cls, Strategy)
    s = create("my_breakout", {"length": 5}, [tmp_path])
    bars = bars_from_returns([0.01] * 10 + [-0.01] * 10)
    out = s.signals(bars)
    # the template's rule: close above its SMA5 -> +1 (rising), below -> -1 (falling)
    assert (out["direction"].iloc[:4] == 0).all()
    assert (out["direction"].iloc[4:11] == 1).all() and (out["direction"].iloc[12:] == -1).all()
    with pytest.raises(PluginError, match="unknown parameter"):
        create("my_breakout", {"lenght": 5}, [tmp_path])


def test_scaffold_into_the_package_is_found_without_reinstalling(tmp_path: Path, monkeypatch) -> None:
    # Stand in for strategies/ with a temp directory on the package path, so the repo is untouched.
    monkeypatch.setattr(strategies, "__path__", [*strategies.__path__, str(tmp_path)])
    scaffold("zz_fresh_plugin", tmp_path)
    assert available()["zz_fresh_plugin"].__module__ == "strategies.zz_fresh_plugin"


def test_scaffold_refuses_bad_names_and_overwrites(tmp_path: Path) -> None:
    for bad in ["1abc", "my-strat", "class", "", "_hidden"]:
        with pytest.raises(PluginError, match="identifier"):
            scaffold(bad, tmp_path)
    with pytest.raises(PluginError, match="already exists"):
        scaffold("rsi", tmp_path)
    scaffold("once", tmp_path)
    before = (tmp_path / "once.py").read_text()
    with pytest.raises(PluginError, match="not overwriting"):
        scaffold("once", tmp_path)
    assert (tmp_path / "once.py").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["once.py"]


def test_broken_plugin_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import numpy\nraise RuntimeError('boom at import')\n")
    (tmp_path / "typo.py").write_text("def oops(:\n")
    scaffold("fine_one", tmp_path)
    with pytest.warns(PluginWarning) as caught:
        found = available([tmp_path])
    messages = [str(w.message) for w in caught]
    assert any("broken.py" in m and "RuntimeError: boom at import" in m for m in messages)
    assert any("typo.py" in m and "SyntaxError" in m for m in messages)
    assert "fine_one" in found and set(BUILT_INS) <= set(found)


def test_broken_module_in_the_package_is_skipped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(strategies, "__path__", [*strategies.__path__, str(tmp_path)])
    (tmp_path / "zz_broken_pkg_plugin.py").write_text("from nowhere import nothing\n")
    with pytest.warns(PluginWarning, match="strategies.zz_broken_pkg_plugin.*ModuleNotFoundError"):
        found = available()
    assert set(BUILT_INS) <= set(found)


def test_duplicate_name_keeps_the_entry_point(tmp_path: Path) -> None:
    (tmp_path / "impostor.py").write_text(
        "from bot.strategy import Strategy\n\nclass Impostor(Strategy):\n    name = 'rsi'\n"
    )
    with pytest.warns(PluginWarning, match="two strategies are named 'rsi'.*impostor.py"):
        found = available([tmp_path])
    assert found["rsi"] is RsiReversion


def test_no_warning_when_all_is_well() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        available()


def test_template_path_is_the_shipped_template() -> None:
    assert "class MyStrategy(Strategy)" in plugins.TEMPLATE_PATH.read_text()
