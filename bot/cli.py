"""The `soxbot` command line."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from bot.core.config import ConfigError, Settings, load_config

# rich_markup_mode=None: help is plain text, so "[broker]" and "[journal] path" are printed as
# written instead of being read (and dropped) as rich style tags.
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="soxbot: a trading bot for the semiconductor sector.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"soxbot {version('soxbot')}")
        raise typer.Exit()


@app.callback()
def _main(
    _show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """soxbot: a trading bot for the semiconductor sector."""


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file.")]
PluginPathOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--path",
        help="Directory (or .py file) of strategy plugins outside the package; repeatable; "
        "adds to [plugins] paths.",
    ),
]


def _load(config: Path | None, plugin_paths: list[Path] | None = None, **overrides: object) -> Settings:
    """The config file plus command-line overrides (`data__start="2021-01-04"` sets [data] start).

    Each section's overrides are validated together, so `--start` and `--end` are checked against
    each other and not one at a time against the file's values."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    by_section: dict[str, dict[str, object]] = {}
    for dotted, value in overrides.items():
        if value is not None:
            section, key = dotted.split("__")
            by_section.setdefault(section, {})[key] = value
    for section, values in by_section.items():
        current = getattr(cfg, section)
        try:
            setattr(cfg, section, type(current).model_validate({**current.model_dump(), **values}))
        except ValidationError as exc:
            raise _fail(_option_error(exc, list(values))) from exc
    if plugin_paths:
        from bot.core.config import resolve_paths

        cfg.plugins.paths = [*cfg.plugins.paths, *resolve_paths(plugin_paths, Path.cwd())]
    from bot.data.errors import DataError

    hold = cfg.hedge.holdings.strip()
    try:  # a malformed events file or [hedge] holdings stops every command before anything runs
        if cfg.events.file is not None:
            from bot.data.events import load_events

            load_events(cfg.events.file)
        if hold and hold.lower() != "broker":
            from bot.data.holdings import parse_holdings

            parse_holdings(hold)
    except DataError as exc:
        raise _fail(str(exc)) from exc
    return cfg


def _plugin_paths(cfg: Settings) -> tuple[Path, ...]:
    from bot.run.assemble import plugin_paths

    try:
        return plugin_paths(cfg)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc


def _option_error(exc: ValidationError, keys: list[str]) -> str:
    """A pydantic error on command-line overrides, worded by option name, without pydantic's links."""

    def opt(key: object) -> str:
        return "--" + str(key).replace("_", "-")

    lines = []
    for err in exc.errors():
        msg = str(err["msg"]).removeprefix("Value error, ")
        where = opt(err["loc"][0]) if err["loc"] else "/".join(map(opt, keys))  # a whole-section rule
        lines.append(f"Invalid {where}: {msg}.")
    return "\n".join(lines[:2])


def _fail(msg: str, code: int = 2) -> typer.Exit:
    typer.echo(msg, err=True)
    return typer.Exit(code)


ReportsOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--reports", help="Backtest/sweep/walk-forward output folder for the dashboard; repeatable."
    ),
]
LiveOpt = Annotated[
    bool, typer.Option("--live", help="Allow live trading (also needs [broker] live = true).")
]


@app.command()
def run(
    config: ConfigOpt = None,
    live: LiveOpt = False,
    max_bars: Annotated[int | None, typer.Option(help="Stop after this many decisions' bars.")] = None,
    speed: Annotated[
        float | None,
        typer.Option(help="Embedded sandbox: simulated seconds per wall second ([run] sandbox_speed)."),
    ] = None,
    path: PluginPathOpt = None,
    reports: ReportsOpt = None,
) -> None:
    """Run the bot as a service until Ctrl-C, with its dashboard. [broker] kind = "sim" (the default):
    on soxbot's own sandbox, started here on a free loopback port with paper keys of its own;
    kind = "alpaca": on Alpaca's paper API (or live, with both opt-ins)."""
    from bot.core import log

    cfg = _load(config, path, run__max_bars=max_bars, run__sandbox_speed=speed)
    log.configure(cfg.run.log_format, cfg.run.log_level)
    _check_live(cfg, live)
    _check_rates(cfg)
    source = str(config or "defaults")
    if cfg.broker.kind == "alpaca":
        from bot.run.alpaca import run_alpaca

        raise typer.Exit(run_alpaca(cfg, source, live, _dashboard_hook(cfg, reports)))
    raise typer.Exit(_run_embedded(cfg, source, reports))


def _check_live(cfg: Settings, live: bool) -> None:
    if (cfg.broker.live or live) and not (cfg.broker.live and live):
        raise _fail(
            "Live trading needs both `[broker] live = true` and the --live flag. Paper is the default."
        )


def _run_embedded(cfg: Settings, source: str, reports: list[Path] | None = None) -> int:
    """The service on soxbot's own sandbox (a thread of this process, so Ctrl-C leaves nothing behind)."""
    import tempfile

    from bot.run.alpaca import run_alpaca
    from bot.run.embedded import demo_start, plan, settings_for
    from bot.sandbox import SandboxServer

    if cfg.broker.live:
        raise _fail("[broker] live = true needs [broker] kind = 'alpaca': the sandbox is paper only.")
    p = plan(cfg)
    try:
        server = SandboxServer(**p.server_args())
        if p.start is None:  # no date named: start shortly before the strategies' next trade
            sb = server.sandbox
            sb.reset(demo_start(cfg, _sandbox_frame(sb, cfg.universe.signal), sb.start))
        server.start()
    except (ValueError, OSError, RuntimeError, ConfigError) as exc:
        where = f"[data] dir {p.data_dir}" if p.data_dir else "the synthetic model"
        raise _fail(f"The embedded sandbox did not start on {where}: {exc}") from exc
    try:
        with tempfile.TemporaryDirectory(prefix="soxbot-sandbox-") as cache:
            run_cfg = settings_for(cfg, server.url, p, Path(cache))
            bars = f"bars from {p.data_dir}" if p.data_dir else "SYNTHETIC DATA"
            typer.echo(
                f"sandbox: {server.url} (paper, {bars}, clock {p.speed:g}x), journal {run_cfg.journal.path}"
            )
            return run_alpaca(run_cfg, source, False, _dashboard_hook(run_cfg, reports), p.data_dir is None)
    finally:
        server.stop()


def _sandbox_frame(sb: object, symbol: str) -> object:
    """The sandbox's bars of `symbol` as a DataFrame indexed by bar start (UTC)."""
    import pandas as pd

    b = sb.market.bars[symbol]  # type: ignore[attr-defined]
    cols = {k: getattr(b, k) for k in ("open", "high", "low", "close", "volume")}
    return pd.DataFrame(cols, index=pd.DatetimeIndex(pd.to_datetime(b.start, utc=True)))


def _dashboard_hook(cfg: Settings, reports: list[Path] | None = None) -> Any:
    """What the service calls once it listens: start the dashboard beside /healthz, print its URL."""
    if not cfg.service.dashboard:
        return None
    from functools import partial

    from bot.dashboard.serve import service_dashboard

    return partial(service_dashboard, reports=list(reports or []))


@app.command()
def replay(
    config: ConfigOpt = None,
    live: LiveOpt = False,
    max_bars: Annotated[int | None, typer.Option(help="Stop after this many bars.")] = None,
    speed: Annotated[float | None, typer.Option(help="Replay speed in bars per second.")] = None,
    path: PluginPathOpt = None,
) -> None:
    """Replay the configured bars (synthetic by default) through the live signal path into the
    in-process paper broker, one line per bar, then exit."""
    from bot.broker.sim import SimBroker
    from bot.core import log
    from bot.data.errors import DataError
    from bot.data.splits import table_for
    from bot.journal.journal import Journal
    from bot.run.assemble import build_strategies, load_market
    from bot.run.replay import StopFlag, run_replay
    from bot.signals.window import live_window

    cfg = _load(config, path, run__max_bars=max_bars, run__speed=speed)
    log.configure(cfg.run.log_format, cfg.run.log_level)
    _check_live(cfg, live)
    _check_rates(cfg)
    if cfg.broker.kind == "alpaca":
        raise _fail(
            "`soxbot replay` trades the in-process paper broker: "
            "use `soxbot run` for [broker] kind = 'alpaca'."
        )
    try:
        strategies = build_strategies(cfg, str(config or "defaults"))
        bars, synthetic = load_market(cfg)
        splits = table_for(cfg.data, cfg.universe.symbols)  # checked before anything is traded
    except (ConfigError, DataError) as exc:
        raise _fail(str(exc)) from exc
    journal = Journal(cfg.journal.path)
    from bot.run.backtest import set_id_for

    journal.start_run("paper-replay", set_id_for(cfg), json.loads(cfg.model_dump_json()), synthetic)
    broker = SimBroker.from_settings(cfg)
    stop = StopFlag()
    stop.install()
    status = "ok"
    try:
        engine = run_replay(
            cfg, strategies, bars, broker, journal, live_window(strategies), stop, synthetic, splits
        )
        if stop.event.is_set():
            status = "stopped"
        from bot.run.leveraged import journal_closed_trades

        journal_closed_trades(cfg, journal, engine.trades, bars)  # decay and carry of each trade
    finally:
        journal.end_run(status)
        journal.close()


def _check_rates(cfg: Settings) -> None:
    """A `[leveraged] rates_file` that cannot be read stops the run before anything trades."""
    from bot.data.errors import DataError
    from bot.risk.attribution import rates_for

    try:
        rates_for(cfg.leveraged)
    except DataError as exc:
        raise _fail(str(exc)) from exc


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sandbox(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 = any free port (printed at start).")] = 8765,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory of {SYMBOL}_{TF}.csv to replay; default: synthetic bars.")
    ] = None,
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of synthetic bars and partial fills.")] = 7,
    key: Annotated[str | None, typer.Option(help="API key the sandbox accepts (default: any).")] = None,
    secret: Annotated[str | None, typer.Option(help="Secret the sandbox accepts (default: any).")] = None,
    hold_clock: Annotated[
        bool,
        typer.Option("--hold-clock", help="Start with the clock still; `soxbot run` releases it once ready."),
    ] = False,
) -> None:
    """Run the local Alpaca-compatible paper broker (trading + market data + streams) to rehearse offline.

    Further options (--timeframe, --start, --symbols, --fault-*, ...) pass through: `soxbot sandbox
    --help-all` lists them all."""
    from bot.sandbox import main as sandbox_main

    argv = ["--host", host, "--port", str(port), "--speed", str(speed), "--seed", str(seed)]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    if key is not None:
        argv += ["--key", key]
    if secret is not None:
        argv += ["--secret", secret]
    if hold_clock:
        argv += ["--hold-clock"]
    extra = list(ctx.args)
    if "--help-all" in extra:
        argv = []  # the full list, with defaults as the sandbox has them
    raise typer.Exit(sandbox_main(argv + extra))


@app.command()
def backtest(
    config: ConfigOpt = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory of {SYMBOL}_{TF}.csv; implies source=csv.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First date, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD.")] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("backtest-out"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar on long runs.")] = True,
    path: PluginPathOpt = None,
    lookahead_check: Annotated[
        bool,
        typer.Option(
            "--lookahead-check/--no-lookahead-check",
            help="Recompute each plugin's signals on truncated histories first and refuse one that "
            "reads later bars.",
        ),
    ] = True,
) -> None:
    """Backtest the configured strategies; writes trades.csv, equity.csv, summary.json, report.html.

    Bars before --start warm the strategies up (where the data has them); trading starts at --start."""
    from bot.core import log
    from bot.data.errors import DataError
    from bot.data.splits import table_for
    from bot.report.writer import write_outputs
    from bot.run.assemble import build_strategies, load_market, preroll_bars
    from bot.run.leveraged import prepare as prepare_leverage
    from bot.signals.validate import SignalError

    cfg = _load(config, path, data__start=start, data__end=end)
    if data_dir is not None:
        cfg.data.source = "csv"
        cfg.data.dir = data_dir
    log.configure(cfg.run.log_format, "WARNING" if cfg.run.log_level == "INFO" else cfg.run.log_level)
    try:
        strategies = build_strategies(cfg, str(config or "defaults"))
        bars, synthetic = load_market(cfg, preroll_bars(cfg, strategies))
        leverage = prepare_leverage(cfg, bars)  # underlyings and rates for the decay attribution
        splits = table_for(cfg.data, cfg.universe.symbols)  # checked before anything is traded
    except (ConfigError, DataError) as exc:
        raise _fail(str(exc)) from exc
    try:
        summary = write_outputs(
            cfg,
            strategies,
            bars,
            out,
            synthetic=synthetic,
            progress=progress,
            leverage=leverage,
            splits=splits,
            lookahead_check=lookahead_check,
        )
    except SignalError as exc:
        raise _fail(str(exc)) from exc
    for w in summary["period"]["warnings"]:  # the others (unsizable sides) were said at the start
        typer.echo(f"warning: {w}", err=True)
    s, b = summary["strategy"], summary["buy_and_hold"]
    typer.echo(
        f"{'SYNTHETIC DATA: ' if synthetic else ''}{summary['period']['start']} .. {summary['period']['end']}"
        f" ({summary['period']['bars']} bars)"
    )
    typer.echo(
        f"strategy:     return {s['total_return']:+.2%}  cagr {s['cagr']:+.2%}  sharpe {s['sharpe']:.2f}"
        f"  max dd {s['max_drawdown']:.2%}  trades {s['n_trades']}"
    )
    typer.echo(
        f"buy & hold {cfg.universe.signal}: return {b['total_return']:+.2%}  cagr {b['cagr']:+.2%}"
        f"  sharpe {b['sharpe']:.2f}  max dd {b['max_drawdown']:.2%}"
    )
    for sym, h in summary.get("benchmarks", {}).items():
        if sym != cfg.universe.signal:
            typer.echo(
                f"buy & hold {sym}: return {h['total_return']:+.2%}  cagr {h['cagr']:+.2%}"
                f"  sharpe {h['sharpe']:.2f}  max dd {h['max_drawdown']:.2%}"
            )
    for b in summary.get("price_basis", {}).values():
        if b["basis"] != "as_traded":  # how quantities relate to prices, said once
            typer.echo(f"price basis: {b['statement']}")
    typer.echo(f"wrote {out}/trades.csv equity.csv summary.json report.html journal.db")


DataDirOpt = Annotated[Path | None, typer.Option(help="Directory of {SYMBOL}_{TF}.csv; implies source=csv.")]
StartOpt = Annotated[str | None, typer.Option(help="First date, YYYY-MM-DD.")]
EndOpt = Annotated[str | None, typer.Option(help="Last date, YYYY-MM-DD.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of every random draw (same seed, same results).")]
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        help="Run on a Dask cluster, e.g. tcp://HOST:8786 (needs soxbot[cluster]); default: a local pool."
    ),
]
WorkersOpt = Annotated[int | None, typer.Option(help="Local pool size (default: the CPU count).")]
SerialOpt = Annotated[bool, typer.Option("--serial", help="Run in this process, one job at a time.")]


def _research_cfg(
    config: Path | None, path: list[Path] | None, data_dir: Path | None, start: str | None, end: str | None
) -> Settings:
    from bot.core import log

    cfg = _load(config, path, data__start=start, data__end=end)
    if data_dir is not None:
        cfg.data.source = "csv"
        cfg.data.dir = data_dir
    log.configure(cfg.run.log_format, "WARNING" if cfg.run.log_level == "INFO" else cfg.run.log_level)
    return cfg


def _where(cluster: str | None, serial: bool, workers: int | None = None) -> str:
    if cluster and serial:
        raise _fail("--cluster and --serial exclude each other. Fix: give one of them.")
    if workers is not None and workers < 1:
        raise _fail(f"--workers {workers}: give 1 or more (or leave it out: one per CPU).")
    return cluster or ("serial" if serial else "pool")


def _research(fn: object, *args: object, **kwargs: object) -> None:
    """Run a research command body, printing its lines; user errors become messages (exit 2)."""
    from bot.data.errors import DataError
    from bot.research.executor import ClusterError

    try:
        lines = fn(*args, **kwargs)  # type: ignore[operator]
    except (ConfigError, DataError, ClusterError) as exc:
        raise _fail(str(exc)) from exc
    for line in lines:
        typer.echo(line)


@app.command()
def sweep(
    param: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUES, repeatable: ma_cross.fast=5:50:5, risk.stop_loss_pct=0,0.05,0.1."),
    ] = None,
    space: Annotated[
        Path | None, typer.Option(help="TOML file with a [params] table of KEY = VALUES.")
    ] = None,
    method: Annotated[str, typer.Option(help="grid, random, or optuna (needs soxbot[optuna]).")] = "grid",
    trials: Annotated[int, typer.Option(help="Trials for random / optuna.")] = 0,
    objective: Annotated[
        str, typer.Option(help="sharpe, cagr, total_return, calmar, sortino or max_drawdown.")
    ] = "sharpe",
    heatmap: Annotated[str | None, typer.Option(help="Two keys for the heatmap, KEY_X,KEY_Y.")] = None,
    out: Annotated[Path, typer.Option(help="Output directory (a sweep there is resumed).")] = Path(
        "sweep-out"
    ),
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming.")] = False,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    serial: SerialOpt = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    path: PluginPathOpt = None,
) -> None:
    """Backtest a parameter space (strategy parameters and risk keys); rank, heatmap, DSR and PBO."""
    from bot.research import commands

    cfg = _research_cfg(config, path, data_dir, start, end)
    where = _where(cluster, serial, workers)
    try:
        dims = commands.read_space(param, space)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    keys = [k.strip() for k in heatmap.split(",")] if heatmap else None
    if keys is not None and (len(keys) != 2 or not set(keys) <= {d.key for d in dims}):
        raise _fail(
            f"--heatmap {heatmap}: give two of the varied keys, e.g. ma_cross.fast,ma_cross.slow."
        )
    _research(
        commands.sweep, cfg, dims, out, method, trials, seed, objective, where, workers, fresh, keys, progress
    )


@app.command()
def walkforward(
    param: Annotated[list[str] | None, typer.Option(help="KEY=VALUES, repeatable (as for sweep).")] = None,
    space: Annotated[Path | None, typer.Option(help="TOML file with a [params] table.")] = None,
    is_bars: Annotated[int, typer.Option(help="In-sample window, in bars (756 = 3 years of days).")] = 756,
    oos_bars: Annotated[int, typer.Option(help="Out-of-sample window, in bars.")] = 252,
    anchored: Annotated[
        bool, typer.Option("--anchored", help="In-sample from the start (else rolling).")
    ] = False,
    method: Annotated[str, typer.Option(help="grid, random or optuna.")] = "grid",
    trials: Annotated[int, typer.Option(help="Trials for random / optuna.")] = 0,
    objective: Annotated[str, typer.Option(help="What each in-sample window maximises.")] = "sharpe",
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("walkforward-out"),
    fresh: Annotated[bool, typer.Option("--fresh", help="Start over instead of resuming.")] = False,
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    serial: SerialOpt = False,
    path: PluginPathOpt = None,
) -> None:
    """Optimise on each in-sample window, trade the next out-of-sample one; stitched OOS vs buy-and-hold."""
    from bot.research import commands

    cfg = _research_cfg(config, path, data_dir, start, end)
    where = _where(cluster, serial, workers)
    try:
        dims = commands.read_space(param, space)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    _research(
        commands.walkforward,
        cfg,
        dims,
        out,
        method,
        trials,
        seed,
        objective,
        where,
        workers,
        fresh,
        is_bars,
        oos_bars,
        anchored,
    )


@app.command()
def montecarlo(
    runs: Annotated[int, typer.Option(help="Bootstrap paths of the strategy's returns.")] = 2000,
    block: Annotated[int, typer.Option(help="Bootstrap block length, in bars.")] = 20,
    perturb_runs: Annotated[int, typer.Option(help="Backtests on perturbed bars (0 = none).")] = 50,
    perturb_bps: Annotated[float, typer.Option(help="Size of the price perturbation, basis points.")] = 20.0,
    random_runs: Annotated[
        int, typer.Option(help="Random-entry strategies for the p-value (0 = none).")
    ] = 1000,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("montecarlo-out"),
    seed: SeedOpt = 0,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    cluster: ClusterOpt = None,
    workers: WorkersOpt = None,
    serial: SerialOpt = False,
    path: PluginPathOpt = None,
) -> None:
    """Bootstrap of returns, perturbed bars, random-entry baseline: CAGR/drawdown spreads, p-value."""
    from bot.research import commands

    cfg = _research_cfg(config, path, data_dir, start, end)
    where = _where(cluster, serial, workers)
    _research(
        commands.montecarlo,
        cfg,
        out,
        runs,
        block,
        perturb_runs,
        perturb_bps,
        random_runs,
        seed,
        where,
        workers,
    )


@app.command()
def dashboard(
    journal: Annotated[
        Path, typer.Option("--journal", help="Journal file: a backtest's journal.db, a stopped service's.")
    ],
    reports: ReportsOpt = None,
    config: ConfigOpt = None,
    port: Annotated[int | None, typer.Option(help="Port; 0 = any free ([service] dashboard_port).")] = None,
) -> None:
    """Serve the read-only dashboard of a journal at rest, until Ctrl-C. Host and token as [service]
    health_host / health_token (a token is required off loopback)."""
    from bot.dashboard.serve import journal_dashboard

    cfg = _load(config, None, service__dashboard_port=port)
    if not journal.is_file():
        raise _fail(
            f"No journal at {journal}: give a backtest's journal.db (--out DIR) or the service's journal."
        )
    s = cfg.service
    token = s.health_token.get_secret_value() if s.health_token else None
    try:
        server = journal_dashboard(journal, list(reports or []), s.health_host, s.dashboard_port, token)
    except (ValueError, OSError) as exc:
        raise _fail(f"The dashboard did not start: {exc}") from exc
    typer.echo(f"dashboard: {server.url}{' (add ?token=...)' if token else ''}  (Ctrl-C stops it)")
    server.serve_until_signal()


@app.command()
def strategies(config: ConfigOpt = None, path: PluginPathOpt = None) -> None:
    """List the discovered strategy plugins with their parameters and defaults."""
    from bot.signals.plugins import available, describe_params

    for name, cls in sorted(available(_plugin_paths(_load(config, path))).items()):
        doc = (cls.__doc__ or "").strip().splitlines()
        typer.echo(f"{name}  ({cls.__module__}.{cls.__name__})  {doc[0] if doc else ''}")
        for pname, ptype, default, desc in describe_params(cls):
            typer.echo(f"    {pname}: {ptype} = {default!r}  {desc or ''}".rstrip())


@app.command("new-strategy")
def new_strategy(
    name: Annotated[str, typer.Argument(help="Plugin name, a python identifier, e.g. my_breakout.")],
    dest: Annotated[Path, typer.Option(help="Directory to write the plugin file into.")] = Path("strategies"),
) -> None:
    """Scaffold a strategy plugin from the template (one file, one class)."""
    from bot.signals.plugins import PluginError, scaffold

    try:
        path = scaffold(name, dest)
    except (PluginError, FileExistsError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"wrote {path}")
    if _in_package(path):
        typer.echo(f"next: soxbot test-strategy {name}, then add it under [[strategies]] and backtest")
    else:
        import shlex

        where = shlex.quote(str(path.parent.resolve()))
        typer.echo(
            f"next: soxbot test-strategy {name} --path {where}\n"
            f"then add it under [[strategies]] and the directory under [plugins] paths in your config "
            f"(or pass --path {where} to run and backtest)"
        )


def _in_package(path: Path) -> bool:
    """Whether `path` sits in the `strategies` package, where every command finds it unasked."""
    from bot.signals.plugins import TEMPLATE_PATH

    return path.resolve().parent == TEMPLATE_PATH.parent


@app.command("test-strategy")
def test_strategy(
    name: Annotated[str, typer.Argument(help="Plugin name.")],
    config: ConfigOpt = None,
    path: PluginPathOpt = None,
) -> None:
    """Check a plugin: defaults validate, output shape, warm-up, no look-ahead, live-window parity."""
    from bot.signals.plugin_check import check_plugin

    notes: list[str] = []
    problems = check_plugin(name, _plugin_paths(_load(config, path)), notes=notes)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    if problems:
        for p in problems:
            typer.echo(f"FAIL {p}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{name}: all checks passed")


@app.command()
def journal(
    config: ConfigOpt = None,
    path: Annotated[Path | None, typer.Option(help="Journal file (default: [journal] path).")] = None,
    kind: Annotated[
        str, typer.Option(help="runs | signals | risk | orders | fills | equity | attribution")
    ] = "orders",
    n: Annotated[int, typer.Option("-n", help="How many rows.")] = 20,
    full: Annotated[
        bool, typer.Option("--full", help="--kind runs: print each run's whole configuration as JSON.")
    ] = False,
) -> None:
    """Show the latest journal entries."""
    import pandas as pd

    from bot.journal.journal import Journal

    tables = {"runs", "signals", "risk", "orders", "fills", "equity", "attribution"}
    if kind not in tables:
        raise _fail(f"--kind must be one of {', '.join(sorted(tables))}")
    p = path or _load(config).journal.path
    if not Path(p).exists():
        raise _fail(f"No journal at {p}. Run `soxbot run` or `soxbot backtest` first.")
    j = Journal(p)
    if kind == "attribution" and not j.query("SELECT name FROM sqlite_master WHERE name='attribution'").size:
        typer.echo("(no attribution yet: backtests of leveraged funds write it)")  # its own table
        return
    order = "id" if kind == "runs" else "rowid"
    df = j.query(f"SELECT * FROM {kind} ORDER BY {order} DESC LIMIT ?", (n,)).iloc[::-1]
    if df.empty:
        typer.echo(f"(no {kind} yet)")
        return
    if kind == "runs":
        from bot.journal import runs

        if full:
            typer.echo(runs.full(df))
            return
        df = runs.summary(df)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        typer.echo(df.to_string(index=False))
    if kind == "runs":
        typer.echo("(config: hash of the run's whole configuration; --full prints it)")


@app.command()
def status(
    config: ConfigOpt = None,
    path: Annotated[Path | None, typer.Option(help="Journal file (default: [journal] path).")] = None,
) -> None:
    """Mode, next runs, positions with entry/stop/P&L, open orders, today's P&L, locks, data age.

    With `[broker] kind = "alpaca"` it also asks the broker (the source of truth) and flags mismatches."""
    from functools import partial

    from bot.run.position_attribution import position_lines
    from bot.run.service.events_status import event_lines
    from bot.run.service.status import status_report

    cfg = _load(config)
    p = path or cfg.journal.path
    broker = _alpaca_view(cfg) if cfg.broker.kind == "alpaca" else None
    now, clock = None, None
    if broker is not None:  # the bot lives on the broker's clock (the sandbox's, in a rehearsal)
        try:
            now, clock = broker.now(), f"the broker's ({cfg.broker.base_url})"
        except Exception as exc:
            typer.echo(f"(broker clock not read, showing wall-clock times: {type(exc).__name__})", err=True)
    try:
        typer.echo(
            status_report(
                p,
                broker=broker,
                now=now,
                clock=clock,
                attribution=partial(position_lines, cfg),
                events=partial(event_lines, cfg),
            )
        )
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from exc


class _AlpacaView:
    """Read-only look at an Alpaca account for `soxbot status` (no streams, no orders sent)."""

    def __init__(self, client: object) -> None:
        self.client = client

    def positions(self) -> list[object]:
        return self.client.get_all_positions()  # type: ignore[attr-defined]

    def now(self) -> dt.datetime:
        """The broker's time (GET /v2/clock), tz-aware."""
        return self.client.get_clock().timestamp  # type: ignore[attr-defined]

    def open_orders(self) -> list[object]:
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        return self.client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500))  # type: ignore[attr-defined]


def _alpaca_view(cfg: Settings) -> _AlpacaView | None:
    from alpaca.trading.client import TradingClient

    from bot.broker.alpaca import AlpacaSetupError, credentials
    from bot.core.alpaca_http import harden

    try:
        key, secret = credentials(cfg.broker)
    except AlpacaSetupError as exc:
        typer.echo(f"(broker not queried: {exc})", err=True)
        return None
    client = TradingClient(key, secret, paper=not cfg.broker.live, url_override=cfg.broker.base_url)
    return _AlpacaView(harden(client, 10.0))


@app.command()
def hedge(
    holdings: Annotated[
        str | None,
        typer.Option(
            help='Holdings: SYM=QTY,... (e.g. NVDA=100,AMD=250), a CSV file (symbol,quantity), or "broker" '
            "(the broker's positions outside the bot's symbols). Default: [hedge] holdings."
        ),
    ] = None,
    ratio: Annotated[
        float | None, typer.Option(min=0.01, max=2.0, help="Hedge ratio (default [hedge] ratio).")
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(min=20, max=1000, help="Sessions per beta (default [hedge] beta_window, 60)."),
    ] = None,
    index: Annotated[
        str | None, typer.Option(help="Index proxy for the betas (default [hedge] index, SOXX).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory of {SYMBOL}_1d.csv; implies source=csv.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML page with the plots here.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Size SOXS as a hedge for semiconductor holdings: betas, notional and shares, expected cost per
    week and month, drift per 1% index move, the rebalance band, and a backtest with and without it."""
    import json

    from bot.data.errors import DataError
    from bot.data.holdings import parse_holdings
    from bot.run.hedge_cmd import analyse, broker_holdings, render

    cfg = _load(config)
    if data_dir is not None:
        cfg.data.source = "csv"
        cfg.data.dir = data_dir
    if index is not None:
        cfg.hedge.index = index.upper()
    text = holdings if holdings is not None else cfg.hedge.holdings
    try:
        if text.strip().lower() == "broker":
            view = _alpaca_view(cfg) if cfg.broker.kind == "alpaca" else None
            if view is None:
                raise _fail(
                    'holdings "broker" needs [broker] kind = "alpaca" and its keys. Fix: set them, '
                    "or pass --holdings SYM=QTY,..."
                )
            own = {*cfg.universe.symbols, cfg.hedge.instrument, cfg.hedge.index}
            held = broker_holdings(view.positions(), own)
        else:
            held = parse_holdings(text)
        report, plots = analyse(cfg, held, ratio, window)
    except (DataError, ConfigError) as exc:
        raise _fail(str(exc)) from exc
    table = render(report)
    typer.echo(json.dumps(report, indent=2) if as_json else table)
    if html is not None:
        from bot.report.hedge_page import write_hedge_page

        write_hedge_page(html, report, table, plots)
        if not as_json:
            typer.echo(f"wrote {html}")


@app.command()
def decay(
    config: ConfigOpt = None,
    symbol: Annotated[
        str, typer.Option(help="A leveraged fund ([[leveraged.funds]] or SOXL/SOXS).")
    ] = "SOXS",
    days: Annotated[
        int, typer.Option(min=2, max=250, help="Planned hold and history window, sessions.")
    ] = 20,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory of {SYMBOL}_{TF}.csv; implies source=csv.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="First date to read, YYYY-MM-DD.")] = None,
) -> None:
    """Expected decay of a leveraged fund over 5/10/20 (and --days) sessions from today's data, and
    the realised gap against L x its index in the windows before."""
    from bot.data.errors import DataError
    from bot.run.decay_cmd import decay_report

    cfg = _load(config, None, data__start=start)
    if data_dir is not None:
        cfg.data.source = "csv"
        cfg.data.dir = data_dir
    try:
        typer.echo(decay_report(cfg, symbol.upper(), days))
    except (ConfigError, DataError) as exc:
        raise _fail(str(exc)) from exc


@app.command()
def rearm(
    config: ConfigOpt = None,
    path: Annotated[Path | None, typer.Option(help="Journal file (default: [journal] path).")] = None,
) -> None:
    """Lift the max-drawdown kill switch after a person has looked."""
    from bot.execution.engine import KILL_KEY
    from bot.journal.journal import Journal

    j = Journal(path or _load(config).journal.path)
    was = j.get_state(KILL_KEY)
    j.set_state(KILL_KEY, "")
    typer.echo(f"kill switch lifted (was: {was})" if was else "kill switch was not on")


from bot.run.data_cmd import app as data_app  # noqa: E402 - `soxbot data download|check`

app.add_typer(data_app, name="data")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
