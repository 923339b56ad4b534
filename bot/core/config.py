"""The configuration contract: one TOML file plus SOXBOT_* environment overrides.

Keys here are public: users' files and tools rely on them. A wrong key, type or value fails at
start with a message that names the key, the file and the fix (see `load_config`).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    source: Literal["synthetic", "csv", "alpaca"] = Field(
        "synthetic", description="Where bars come from: the seeded synthetic model, CSV files, or Alpaca."
    )
    dir: Path = Field(Path("../shared/data"), description="Directory of {SYMBOL}_{TIMEFRAME}.csv files.")
    timeframe: Literal["1d", "1h", "30m", "15m", "5m", "1m"] = Field("1d", description="Bar length.")
    start: str | None = Field(None, description="First date to load, YYYY-MM-DD (inclusive).")
    end: str | None = Field(None, description="Last date to load, YYYY-MM-DD (inclusive).")
    seed: int = Field(7, description="Seed of the synthetic model; the same seed gives the same bars.")
    synthetic_years: float = Field(3.0, gt=0, le=200, description="Years of synthetic history.")
    max_gap_bars: int = Field(
        1, ge=0, description="Missing bars tolerated before the bar after a gap is not traded on."
    )
    splits_file: Path | None = Field(
        None,
        description="CSV of splits (symbol,date,ratio[,source]; ratio new:old, e.g. 1:10): the bar files "
        "of its symbols hold as-traded prices; strategies read them split-adjusted and each split is "
        "applied to the position and its orders on its date. Source = 'csv' only.",
    )
    price_basis: Literal["auto", "as_traded", "adjusted"] = Field(
        "auto",
        description="Prices of traded symbols not in splits_file: 'as_traded', 'adjusted' (back-adjusted: "
        "sized by notional, fractional quantities that are not share counts), or 'auto' (adjusted when "
        "a price in the data is above the starting cash).",
    )
    # Alpaca market data (issue: paper trading through Alpaca)
    base_url: str = Field("https://data.alpaca.markets", description="Alpaca market-data base URL.")
    feed: Literal["iex", "sip"] = Field("iex", description="Alpaca data feed.")
    stream_url: str | None = Field(None, description="Market-data WebSocket URL; derived from base_url.")
    cache_dir: Path = Field(Path(".soxbot-cache"), description="On-disk cache of fetched history.")

    @field_validator("start", "end")
    @classmethod
    def _iso_date(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import datetime as dt

        try:
            dt.date.fromisoformat(v)
        except ValueError as exc:
            raise ValueError(f"must be a date written YYYY-MM-DD (e.g. 2021-01-04), got {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _start_before_end(self) -> DataConfig:
        import datetime as dt

        if self.start and self.end and dt.date.fromisoformat(self.start) > dt.date.fromisoformat(self.end):
            raise ValueError(
                f"start {self.start} is after end {self.end}: swap them (both dates are inclusive)"
            )
        return self


class UniverseConfig(_Section):
    signal: str = Field("SOXX", min_length=1, description="Symbol the strategies read (^SOX: use 'SOX').")
    bull: str = Field("SOXL", description="Bought when the combined direction is +1; empty = stay flat.")
    bear: str = Field("SOXS", description="Bought when the combined direction is -1; empty = stay flat.")

    @model_validator(mode="after")
    def _distinct(self) -> UniverseConfig:
        if self.bull and self.bull == self.bear:
            raise ValueError("bull and bear must differ (never hold both sides at once)")
        return self

    @property
    def traded(self) -> list[str]:
        return [s for s in (self.bull, self.bear) if s]

    @property
    def symbols(self) -> list[str]:
        out = [self.signal]
        out += [s for s in self.traded if s not in out]
        return out


class StrategyConfig(_Section):
    name: str = Field(..., description="Plugin name, as listed by `soxbot strategies`.")
    params: dict[str, Any] = Field(default_factory=dict, description="Plugin parameters.")
    weight: float = Field(1.0, gt=0, description="Weight in the `weighted` combiner.")


class PluginsConfig(_Section):
    paths: list[Path] = Field(
        default_factory=list,
        description="Directories (or .py files) of strategy plugins kept outside the soxbot package; "
        "a relative path is read from the config file's directory. `--path` adds more.",
    )


class CombineConfig(_Section):
    mode: Literal["unanimous", "majority", "weighted"] = Field("majority")
    threshold: float = Field(
        0.5, ge=0, le=1, description="`weighted`: |weighted mean| must exceed this to act."
    )


class RiskConfig(_Section):
    sizing: Literal["fixed_fraction", "risk_per_trade", "vol_target"] = "fixed_fraction"
    fraction: float = Field(1.0, gt=0, le=1, description="fixed_fraction: share of equity per position.")
    risk_per_trade: float = Field(
        0.01, gt=0, le=0.5, description="risk_per_trade: share of equity lost if the stop is hit."
    )
    max_position_pct: float = Field(1.0, gt=0, le=1, description="Cap on position value / equity.")
    fractional: bool = Field(False, description="Allow fractional share quantities.")
    stop_loss_pct: float = Field(0.05, ge=0, lt=1, description="Fixed stop below entry; 0 = off.")
    atr_stop_mult: float = Field(0.0, ge=0, description="Stop at entry - mult * ATR; 0 = off.")
    atr_period: int = Field(14, ge=1, description="ATR length (bars of the traded symbol).")
    trailing_stop_pct: float = Field(0.0, ge=0, lt=1, description="Trailing stop below the high; 0 = off.")
    take_profit_pct: float = Field(0.0, ge=0, description="Take profit above entry; 0 = off.")
    max_hold_days: int = Field(0, ge=0, description="Exit after this many sessions held; 0 = off.")
    daily_loss_limit_pct: float = Field(
        0.0, ge=0, lt=1, description="Flatten and lock until next session at this daily loss; 0 = off."
    )
    max_drawdown_pct: float = Field(
        0.0, ge=0, lt=1, description="Flatten and lock until `soxbot rearm` at this drawdown; 0 = off."
    )
    # Stops and sizing in the index's terms: sigma is the signal symbol's daily volatility
    stop_sigma_mult: float = Field(
        0.0,
        ge=0,
        description="Stop at entry x (1 - mult x sigma x |L|): sigma = the signal symbol's daily volatility "
        "of log returns, L = the traded symbol's leverage from [leveraged] (SOXL +3, SOXS -3, else 1); "
        "0 = off.",
    )
    vol_lookback: int = Field(
        20, ge=2, le=1000, description="Daily returns of the signal symbol in sigma (a rolling window)."
    )
    vol_ewma_lambda: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="sigma as an EWMA of squared daily returns with this decay (e.g. 0.94), seeded with "
        "the first vol_lookback returns; 0 = the rolling window.",
    )
    atr_source: Literal["instrument", "underlying"] = Field(
        "instrument",
        description="atr_stop_mult's ATR: of the traded symbol, or of the signal symbol as a share of its "
        "close, times |L| (a stop the index's range sets, not the fund's).",
    )
    vol_target_pct: float = Field(
        0.01,
        gt=0,
        le=1,
        description="sizing = 'vol_target': the position's expected daily volatility as a share of equity "
        "(qty = target x equity / (price x |L| x sigma)).",
    )
    gap_quantile: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="risk_per_trade: size for a loss per share of max(entry - stop, entry x this quantile of "
        "adverse overnight gaps) (e.g. 0.99); 0 = off.",
    )
    gap_lookback: int = Field(
        250, ge=20, le=5000, description="gap_quantile: sessions of overnight gaps it is taken over."
    )
    gap_source: Literal["instrument", "underlying"] = Field(
        "instrument",
        description="gap_quantile: the traded symbol's own open gaps, or the signal symbol's times |L|.",
    )
    max_expected_decay_pct: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Block an entry into a leveraged fund whose expected decay (volatility drag + "
        "expense - financing, in log points) over the planned hold exceeds this; 0 = off.",
    )
    planned_hold_days: int = Field(
        0,
        ge=0,
        description="Sessions an entry is planned to be held, for the decay forecast; 0 = max_hold_days.",
    )

    bull: RiskSide | None = Field(
        None, description="[risk.bull]: the bull side's own rules (overrides and a regime gate)."
    )
    bear: RiskSide | None = Field(
        None, description="[risk.bear]: the bear side's own rules (overrides and a regime gate)."
    )

    @model_validator(mode="after")
    def _stop_for_risk_sizing(self) -> RiskConfig:
        stops = (self.stop_loss_pct, self.atr_stop_mult, self.stop_sigma_mult)
        if self.sizing == "risk_per_trade" and not any(stops):
            raise ValueError(
                "sizing = 'risk_per_trade' needs a stop: set stop_loss_pct, atr_stop_mult or stop_sigma_mult "
                "above 0"
            )
        if self.max_expected_decay_pct > 0 and self.hold_days == 0:
            raise ValueError(
                "max_expected_decay_pct needs a planned hold: "
                "set planned_hold_days (or max_hold_days) above 0"
            )
        for name in ("bull", "bear"):
            side = getattr(self, name)
            if side is None:
                continue
            r = self.model_copy(update=side.overrides())
            if r.sizing == "risk_per_trade" and not any(
                (r.stop_loss_pct, r.atr_stop_mult, r.stop_sigma_mult)
            ):
                raise ValueError(
                    f"[risk.{name}] sizes by 'risk_per_trade' but has no stop: set stop_loss_pct, "
                    f"atr_stop_mult or stop_sigma_mult above 0 in [risk.{name}] (or in [risk])"
                )
        return self

    @property
    def hold_days(self) -> int:
        """The planned hold in sessions the decay gate forecasts over (0: none)."""
        return self.planned_hold_days or self.max_hold_days


class LeveragedFund(_Section):
    """A daily-reset leveraged (or inverse) fund: what its return is made of (bot/risk/leverage.py)."""

    symbol: str = Field(..., min_length=1, description="The fund's symbol, e.g. SOXL.")
    leverage: float = Field(..., description="Daily leverage: +3 for SOXL, -3 for SOXS.")
    underlying: str = Field(..., min_length=1, description="The index (or an ETF on it) the fund tracks.")
    expense_ratio: float = Field(0.0, ge=0, lt=0.2, description="Annual expense ratio, 0.0075 = 0.75%.")

    @field_validator("leverage")
    @classmethod
    def _not_zero(cls, v: float) -> float:
        if v == 0 or abs(v) > 10:
            raise ValueError(f"must be non-zero and within -10..10 (+3 for SOXL, -3 for SOXS), got {v}")
        return v


DEFAULT_FUNDS = (
    LeveragedFund(symbol="SOXL", leverage=3.0, underlying="SOX", expense_ratio=0.0075),
    LeveragedFund(symbol="SOXS", leverage=-3.0, underlying="SOX", expense_ratio=0.0097),
)


class LeveragedConfig(_Section):
    """Leveraged funds and the short rate their financing follows. SOXL (+3) and SOXS (-3) on the SOX
    index are declared by default; a `[[leveraged.funds]]` entry with the same symbol replaces one."""

    short_rate: float = Field(
        0.0, ge=-0.05, le=0.3, description="Annual short-term interest rate, 0.04 = 4%, for financing."
    )
    rates_file: Path | None = Field(
        None,
        description="CSV of short rates, header date,rate, rate in percent per year (5.33 = 5.33%, as FRED "
        "publishes DFF/DTB3); used instead of short_rate. A relative path is read from the config's "
        "directory.",
    )
    funds: list[LeveragedFund] = Field(
        default_factory=list, description="Funds declared here (symbol, leverage, underlying, expense_ratio)."
    )

    @model_validator(mode="after")
    def _unique(self) -> LeveragedConfig:
        seen = [f.symbol for f in self.funds]
        dup = sorted({s for s in seen if seen.count(s) > 1})
        if dup:
            raise ValueError(
                f"fund {', '.join(dup)} is declared twice: keep one [[leveraged.funds]] entry each"
            )
        return self

    def fund(self, symbol: str) -> LeveragedFund | None:
        """The declaration of `symbol`: the config's own, else the built-in default, else None."""
        for f in (*self.funds, *DEFAULT_FUNDS):
            if f.symbol == symbol:
                return f
        return None

    def declared(self, symbol: str) -> bool:
        """Whether the config itself declares `symbol` (not only the built-in default)."""
        return any(f.symbol == symbol for f in self.funds)


# The [risk] keys a side may set for itself in [risk.bull] / [risk.bear]. The account-wide ones (daily
# loss lock, max drawdown, fractional shares) stay in [risk]: both sides share one account.
SIDE_KEYS = (
    "sizing",
    "fraction",
    "risk_per_trade",
    "max_position_pct",
    "stop_loss_pct",
    "atr_stop_mult",
    "atr_period",
    "stop_sigma_mult",
    "vol_target_pct",
    "trailing_stop_pct",
    "take_profit_pct",
    "max_hold_days",
)


class RegimeGate(_Section):
    """When a side may be entered at all, read from the signal symbol's closes: all the conditions
    set must hold at the decision bar, else the entry is blocked and journaled with the figures."""

    regime_sma: int = Field(
        0,
        ge=0,
        description="Enter this side only while the signal's close is on its side of its N-bar SMA (bull: "
        "above, bear: below); 0 = off.",
    )
    regime_drawdown_pct: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Bear: enter only while the signal is at least this far below its peak; bull: only "
        "while it is less far below it; 0 = off.",
    )
    regime_peak_bars: int = Field(
        252, ge=2, description="regime_drawdown_pct: the peak is the highest close of this many bars."
    )

    @field_validator("regime_sma")
    @classmethod
    def _sma_length(cls, v: int) -> int:
        if v == 1:
            raise ValueError("must be 0 (off) or a length of 2 bars or more, e.g. 200")
        return v

    @property
    def gated(self) -> bool:
        return self.regime_sma > 0 or self.regime_drawdown_pct > 0

    def overrides(self) -> dict[str, Any]:
        """The [risk] keys this side sets, as a model_copy update."""
        return {k: v for k in SIDE_KEYS if (v := getattr(self, k, None)) is not None}


def _side_model() -> type[RegimeGate]:
    """[risk.bull] / [risk.bear]: each of SIDE_KEYS, optional (unset = the [risk] value), with the
    type, bounds and description it has in [risk], plus the regime gate."""
    fields: dict[str, Any] = {}
    for k in SIDE_KEYS:
        f = RiskConfig.model_fields[k]
        ann = Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation  # type: ignore[valid-type]
        desc = f"{f.description or 'As ' + k + ' in [risk].'} Unset = the [risk] value."
        fields[k] = (ann | None, Field(None, description=desc))
    return create_model("RiskSide", __base__=RegimeGate, __module__=__name__, **fields)


RiskSide = _side_model()
RiskConfig.model_rebuild()


class BrokerConfig(_Section):
    kind: Literal["sim", "alpaca"] = "sim"
    starting_cash: float = Field(100_000.0, gt=0)
    slippage_bps: float = Field(0.0, ge=0, le=1000, description="Market and stop fills, in basis points.")
    commission: float = Field(0.0, ge=0, description="Per order, in account currency.")
    # Alpaca
    base_url: str = Field("https://paper-api.alpaca.markets", description="Trading API base URL.")
    stream_url: str | None = Field(None, description="trade_updates WebSocket URL; derived from base_url.")
    live: bool = Field(False, description="Trade real money; also needs the --live flag.")
    api_key: SecretStr | None = Field(None, description="Or env APCA_API_KEY_ID.")
    secret_key: SecretStr | None = Field(None, description="Or env APCA_API_SECRET_KEY.")
    foreign_positions: Literal["leave", "adopt"] = Field(
        "leave",
        description="A position in a traded symbol that the bot did not open: 'leave' = report it, leave it "
        "alone and make no new entries while it is held; 'adopt' = manage it as the bot's own (protective "
        "stop at once, exits on signal). Other symbols are always left alone.",
    )


class JournalConfig(_Section):
    path: Path = Field(Path("soxbot.db"), description="SQLite journal file.")


class RunConfig(_Section):
    speed: float = Field(20.0, gt=0, description="Replay driver: bars per second of wall time (0 < speed).")
    max_bars: int = Field(0, ge=0, description="Replay driver: stop after this many bars; 0 = all.")
    sandbox_speed: float = Field(
        43200.0,
        gt=0,
        le=1_000_000,
        description="`soxbot run` on the embedded sandbox ([broker] kind = 'sim'): simulated seconds per "
        "wall second of its clock (43200 = twelve market hours a second: a daily session every 2 s).",
    )
    log_format: Literal["console", "json", "keyvalue"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def is_loopback(host: str) -> bool:
    """True for localhost / 127.0.0.0/8 / ::1: addresses only this machine can reach."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServiceConfig(_Section):
    """`soxbot run` as a long-lived service: when it acts, and how it reports its health."""

    scheduler: bool = Field(
        True,
        description="Alpaca runs: decide on the NYSE-calendar schedule (APScheduler); false = follow each "
        "bar as it completes (simple polling loop).",
    )

    daily_decision_offset_minutes: int = Field(
        0,
        ge=0,
        le=120,
        description="Daily bars: decide this many minutes before the close (e.g. 10 = 15:50 ET) on the day's "
        "bar so far, built from 1-minute bars; orders fill before the close, and backtests fill them at "
        "the day's close. 0 = decide at the close on the completed bar; orders fill at the next open.",
    )
    flat_by_close: bool = Field(
        False,
        description="Close any position shortly before every close (live, and backtests on intraday bars).",
    )
    flat_by_close_minutes: int = Field(
        5, ge=1, le=120, description="flat_by_close: minutes before the close; no decision is made after it."
    )
    misfire_grace_seconds: int = Field(
        60, ge=1, description="A decision running later than this (machine asleep) is skipped, never late."
    )
    health_host: str = Field("127.0.0.1", min_length=1, description="Address of /healthz and /metrics.")
    health_port: int = Field(9108, ge=0, le=65535, description="Port of /healthz and /metrics; 0 = any free.")
    health_token: SecretStr | None = Field(
        None, description="Bearer token for /healthz and /metrics; required off loopback."
    )
    dashboard: bool = Field(True, description="Serve the read-only dashboard (on health_host, same token).")
    dashboard_port: int = Field(
        9109, ge=0, le=65535, description="Port of the dashboard; 0 = any free (the URL is printed at start)."
    )

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ServiceConfig:
        token = self.health_token.get_secret_value() if self.health_token is not None else ""
        if not is_loopback(self.health_host) and not token:
            raise ValueError(
                f"health_host = {self.health_host!r} is not a loopback address: set health_token "
                "(or env SOXBOT_SERVICE__HEALTH_TOKEN) so /healthz and /metrics are not open to the network"
            )
        return self


AlertEvent = Literal["fill", "stop", "lock", "error", "daily"]


class AlertsConfig(_Section):
    webhook_url: SecretStr | None = Field(
        None, description="Slack/Discord-compatible webhook URL; unset = alerts off. A secret: never logged."
    )
    apprise_urls: list[SecretStr] = Field(
        default_factory=list,
        description="Chat targets as apprise URLs (tgram://, discord://, slack://, mailtos://, ...); needs "
        "`pip install 'soxbot[chat]'`. Secrets: never logged.",
    )
    events: list[AlertEvent] = Field(
        default_factory=lambda: ["fill", "stop", "lock", "error", "daily"],
        description="Which events are sent: fill, stop, lock, error, daily.",
    )


def _default_strategies() -> list[StrategyConfig]:
    return [StrategyConfig(name="ma_cross", params={"fast": 20, "slow": 50, "kind": "sma"})]


class EventPolicy(_Section):
    """What to do around events of one kind (`[events.policy.<kind>]`)."""

    sessions_before: int = Field(
        1,
        ge=0,
        le=20,
        description="The blackout starts at the open this many sessions before the event's session and "
        "ends at the event (0 = only the event's own session up to it).",
    )
    action: Literal["no_entry", "reduce", "flat"] = Field(
        "no_entry",
        description="no_entry: no new entries in the blackout; reduce: entries sized x size_factor; "
        "flat: no new entries and any position closed at the blackout's first decision.",
    )
    size_factor: float = Field(0.5, gt=0, le=1, description="action = reduce: the entry size multiplier.")


class EventsConfig(_Section):
    """An event calendar (earnings, FOMC, CPI, payrolls, ...) and blackouts around it, enforced by the
    risk layer in backtests and live alike."""

    file: Path | None = Field(
        None,
        description="CSV with header date,time,kind,symbol,note (see README, Events); a relative path is "
        "read from the config's directory. None = no event calendar.",
    )
    policy: dict[str, EventPolicy] = Field(
        default_factory=dict,
        description="Per event kind (the CSV's `kind`), e.g. [events.policy.fomc]; a kind without a policy "
        "is shown but does not block.",
    )


class HedgeConfig(_Section):
    """SOXS as a hedge for semiconductor holdings (`soxbot hedge`, and hedge mode in the engine)."""

    holdings: str = Field(
        "",
        description='Holdings to hedge: a CSV file (symbol,quantity), SYM=QTY,... inline, or "broker" '
        "(the broker's positions outside the bot's own symbols). Empty = no hedge mode.",
    )
    instrument: str = Field("SOXS", min_length=1, description="The inverse fund the hedge holds.")
    index: str = Field("SOXX", min_length=1, description="The index proxy the betas are measured against.")
    beta_window: int = Field(60, ge=20, le=1000, description="Sessions of daily returns per beta.")
    ratio: float = Field(
        1.0, gt=0, le=2, description="Hedge ratio: the share of the beta-weighted exposure to offset."
    )
    mode: Literal["always", "on_bear_signal"] = Field(
        "always",
        description="always: hold the hedge; on_bear_signal: only while the combined direction is -1.",
    )
    band: float = Field(
        0.10,
        gt=0,
        lt=1,
        description="Rebalance when the hedge's notional is off its target by more than this.",
    )
    min_trade: float = Field(500.0, ge=0, description="Smallest rebalance, in dollars.")


class Settings(BaseSettings):
    """The whole configuration. Load with `load_config(path)`."""

    model_config = SettingsConfigDict(
        env_prefix="SOXBOT_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data: DataConfig = Field(default_factory=DataConfig)
    universe: UniverseConfig = Field(default_factory=UniverseConfig)
    strategies: list[StrategyConfig] = Field(default_factory=_default_strategies, min_length=1)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    combine: CombineConfig = Field(default_factory=CombineConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    journal: JournalConfig = Field(default_factory=JournalConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    leveraged: LeveragedConfig = Field(default_factory=LeveragedConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    hedge: HedgeConfig = Field(default_factory=HedgeConfig)

    @model_validator(mode="after")
    def _hedge_is_its_own_position(self) -> Settings:
        if self.hedge.holdings.strip() and self.universe.bear == self.hedge.instrument:
            raise ValueError(
                f'hedge mode holds {self.hedge.instrument} itself: set [universe] bear = "" (direction -1 '
                'then means flat for the strategy, and the hedge for mode = "on_bear_signal")'
            )
        return self

    toml_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if cls.toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.toml_file))
        return tuple(sources)


class ConfigError(Exception):
    """A configuration problem, worded for the person who has to fix the file."""


def _known_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that owns the last key of `loc`, to suggest a spelling."""
    model: type[BaseModel] | None = Settings
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        candidates = [ann, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"Invalid configuration in {source}:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = _fmt_loc(loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            owner = _section_model(loc)
            known = _known_keys(owner) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            fix = f" Known keys here: {', '.join(known)}." if known else ""
            lines.append(f"  - {key}: unknown key.{hint}{fix} Fix: remove or rename it.")
            continue
        if not loc:  # a rule across sections: its message names the keys and the fix
            lines.append(f"  - {msg.removeprefix('Value error, ')}.")
            continue
        got = err.get("input")
        got_s = "" if isinstance(got, dict) else f" (got {got!r})"
        owner = _section_model(loc)
        desc = ""
        if owner is not None and str(loc[-1]) in owner.model_fields:
            d = owner.model_fields[str(loc[-1])].description
            desc = f" This key is: {d}" if d else ""
        lines.append(f"  - {key}: {msg}{got_s}. Fix: set a valid value for '{key}'.{desc}")
    return "\n".join(lines)


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load TOML + SOXBOT_* env. Raises ConfigError with a message naming key, file and fix."""
    source = "defaults"
    toml_file: Path | None = None
    if path is not None:
        toml_file = Path(path)
        source = str(toml_file)
        if not toml_file.is_file():
            raise ConfigError(f"Config file {toml_file} does not exist. Fix: copy config.example.toml.")
        import tomllib

        try:
            with toml_file.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{toml_file} is not valid TOML: {exc}. Fix: correct the syntax.") from exc
    klass = type("_FileSettings", (Settings,), {"toml_file": toml_file})
    try:
        cfg = klass(**overrides)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source + " (or SOXBOT_* environment)")) from exc
    if toml_file is not None and PLUGIN_PATHS_ENV not in os.environ:
        # Paths written in the file mean "beside the file", wherever soxbot is started from.
        cfg.plugins.paths = resolve_paths(cfg.plugins.paths, toml_file.resolve().parent)
    if toml_file is not None and cfg.leveraged.rates_file is not None and RATES_FILE_ENV not in os.environ:
        cfg.leveraged.rates_file = resolve_paths([cfg.leveraged.rates_file], toml_file.resolve().parent)[0]
    if toml_file is not None and cfg.events.file is not None and EVENTS_FILE_ENV not in os.environ:
        cfg.events.file = resolve_paths([cfg.events.file], toml_file.resolve().parent)[0]
    # Return a plain Settings so callers do not see the helper class.
    return Settings.model_construct(**{k: getattr(cfg, k) for k in Settings.model_fields})


PLUGIN_PATHS_ENV = "SOXBOT_PLUGINS__PATHS"
RATES_FILE_ENV = "SOXBOT_LEVERAGED__RATES_FILE"
EVENTS_FILE_ENV = "SOXBOT_EVENTS__FILE"


def resolve_paths(paths: list[Path], base: Path) -> list[Path]:
    """`paths` with `~` expanded and relative ones taken from `base`."""
    out = []
    for p in paths:
        p = Path(p).expanduser()
        out.append(p if p.is_absolute() else base / p)
    return out
