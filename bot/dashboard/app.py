"""The dashboard's web app: server-rendered pages, htmx fragments that refresh themselves, a JSON API.

Every route is GET (HEAD) and reads only: the journal read-only, the running service's state through
`LiveView`, report folders as files. Re-arming the kill switch and every other act stays on the CLI.
Static files are served from the package (htmx, vendored) and from the installed plotly package
(plotly.min.js): nothing comes from a CDN.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from bot.core.config import DataConfig, is_loopback
from bot.dashboard.auth import TokenMiddleware
from bot.dashboard.journal_view import TABLES, JournalView
from bot.dashboard.live import LiveView
from bot.dashboard.market import ChartCache, buy_and_hold, chart_data, loader_for
from bot.dashboard.reports import list_reports, report_file

HERE = Path(__file__).parent
PAGES = ("overview", "chart", "orders", "signals", "equity", "events", "reports")


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


class Dashboard:
    """The state behind the routes: one journal, optionally the running service, report folders."""

    def __init__(
        self, journal: Path, live: LiveView | None = None, reports: list[Path] | None = None
    ) -> None:
        self.view = JournalView(journal)
        self.live = live
        self.reports = [Path(p) for p in reports or []]
        self.charts = ChartCache()
        self.closes = ChartCache()
        self.decays = ChartCache()

    def now(self) -> dt.datetime:
        return self.live.now() if self.live is not None else dt.datetime.now(dt.UTC)

    def overview(self) -> dict[str, Any]:
        try:
            out = self.view.overview(self.now())
        except FileNotFoundError as exc:
            out = {"run": None, "error": str(exc)}
        if self.live is not None:
            out["live"] = self.live.snapshot()
        else:
            out["live"] = None
            if out.get("run"):
                out["data"]["stale"] = False  # a journal at rest: nothing new is expected
        if out.get("positions"):
            self._decay(out["positions"], out.get("data", {}).get("last_bar"))
        return out

    def _decay(self, positions: list[dict[str, Any]], last_bar: str | None) -> None:
        """Each leveraged position's decay and carry since entry (`bot/risk/leverage.py`), from the
        run's own bars: computed once per new bar, not on every poll of the page."""
        from bot.run.position_attribution import position_decay

        run = self.view.run()
        if run is None:
            return
        key = (run["id"], last_bar, tuple((p["symbol"], p["entry_time"], p["mark"]) for p in positions))
        now = pd.Timestamp(self.now()) if self.live is not None else None

        def make() -> dict[str, Any]:
            try:
                load = self._loader(run["config"])
            except Exception as exc:
                return {p["symbol"]: f"n/a ({exc})" for p in positions}
            return position_decay(run["config"], positions, last_bar, lambda syms: load(syms, now))

        got = self.decays.get(key, make)
        for p in positions:
            p["decay"] = got.get(p["symbol"])

    def _loader(self, config: dict[str, Any]) -> Any:
        if self.live is not None:
            return loader_for(self.live.cfg.data, self.live.keys())
        data = DataConfig.model_validate(config.get("data", {}))
        if data.source == "alpaca" and is_loopback(urlsplit(data.base_url).hostname or ""):
            raise ValueError(f"the bars came from the sandbox at {data.base_url}, gone with its run")
        return loader_for(data)

    def chart(self) -> dict[str, Any]:
        run = self.view.run()
        if run is None:
            return {"signal": {"ts": []}, "indicators": {}, "traded": {}, "fills": []}
        eq = self.view.equity()
        key = (run["id"], eq["ts"][-1] if eq["ts"] else None)
        now = pd.Timestamp(self.now()) if self.live is not None else None

        def make() -> dict[str, Any]:
            try:
                return chart_data(run["config"], self._loader(run["config"]), now)
            except Exception as exc:  # no data where the run read it: say so on the page
                return {"signal": {"ts": []}, "indicators": {}, "traded": {}, "error": str(exc)}

        out = dict(self.charts.get(key, make))
        first = (out.get("signal", {}).get("ts") or [""])[0][:10]  # the fills of the bars shown
        out["fills"] = [f for f in self.view.rows("fills")[::-1] if f["ts"][:10] >= first]
        return out

    def _closes(self, run: dict[str, Any], key: Any) -> dict[str, list[Any]]:
        """The signal symbol's closes over the whole run (buy-and-hold), cached like the chart."""
        signal = run["config"].get("universe", {}).get("signal", "SOXX")
        now = pd.Timestamp(self.now()) if self.live is not None else None

        def make() -> dict[str, Any]:
            try:
                df = self._loader(run["config"])([signal], now)[signal]
            except Exception as exc:
                return {"ts": [], "values": [], "error": str(exc)}
            return {"ts": [t.isoformat() for t in df.index], "values": df["close"].tolist()}

        return self.closes.get(key, make)

    def equity(self) -> dict[str, Any]:
        eq = self.view.equity()
        run = self.view.run()
        bh: list[Any] = []
        if run is not None and eq["ts"]:
            closes = self._closes(run, (run["id"], eq["ts"][-1]))
            start = float(run["config"].get("broker", {}).get("starting_cash", eq["equity"][0]))
            bh = buy_and_hold(closes, eq["ts"], start)
        signal = (run or {}).get("config", {}).get("universe", {}).get("signal")
        return {**eq, "buy_and_hold": bh, "signal": signal}


def build_app(
    journal: str | Path,
    live: LiveView | None = None,
    reports: list[Path] | None = None,
    token: str | None = None,
) -> Starlette:
    d = Dashboard(Path(journal), live, reports)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["money"] = lambda v: "n/a" if v is None else f"{v:,.2f}"
    templates.env.filters["pct"] = lambda v: "n/a" if v is None else f"{v:+.2%}"
    templates.env.filters["num"] = lambda v: "" if v is None else f"{v:g}" if isinstance(v, float) else v

    def page(name: str, partial: bool = False) -> Any:
        async def handler(request: Request) -> Response:
            ctx: dict[str, Any] = {"request": request, "page": name, "live": d.live is not None,
                                   "journal": str(d.view.path)}  # fmt: skip
            if name == "overview":
                ctx["o"] = d.overview()
            elif name in ("orders", "signals"):
                day = _day(request)
                ctx["day"] = day
                ctx["days"] = _safe(d.view.days, [])
                tables = ("orders", "fills") if name == "orders" else ("signals", "risk")
                ctx["tables"] = {t: _safe(lambda t=t: d.view.rows(t, day), []) for t in tables}
            elif name == "reports":
                ctx["reports"] = list_reports(d.reports)
                ctx["folders"] = [str(p) for p in d.reports]
            tpl = f"_{name}.html" if partial else f"{name}.html"
            return templates.TemplateResponse(request, tpl, ctx)

        return handler

    async def api(request: Request) -> Response:
        what = request.path_params["what"]
        if what == "overview":
            return JSONResponse(d.overview())
        if what in TABLES:
            return JSONResponse(_safe(lambda: d.view.rows(what, _day(request)), []))
        if what == "days":
            return JSONResponse(_safe(d.view.days, []))
        if what == "run":
            return JSONResponse(_safe(d.view.run, None))
        if what == "equity":
            return JSONResponse(_safe(d.equity, {"ts": []}))
        if what == "chart":
            return JSONResponse(_safe(d.chart, {"signal": {"ts": []}}))
        if what == "reports":
            return JSONResponse(list_reports(d.reports))
        if what == "events":
            return JSONResponse({"available": False, "reason": "no events or hedge module in this build"})
        raise HTTPException(404, f"no /api/{what}: see README, Dashboard")

    async def report(request: Request) -> Response:
        path = report_file(d.reports, int(request.path_params["i"]), request.path_params["path"])
        if path is None:
            raise HTTPException(404, "not in a reports folder")
        return FileResponse(path)

    async def plotly(request: Request) -> Response:
        return FileResponse(plotly_js(), media_type="text/javascript")

    routes = [Route("/", page("overview"))]
    routes += [Route(f"/{p}", page(p)) for p in PAGES if p != "overview"]
    routes += [Route(f"/partials/{p}", page(p, partial=True)) for p in ("overview", "orders", "signals")]
    routes += [
        Route("/api/{what}", api),
        Route("/files/{i:int}/{path:path}", report),
        Route("/static/plotly.min.js", plotly),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(TokenMiddleware, token=token)
    app.state.dashboard = d
    return app


def _day(request: Request) -> str | None:
    day = request.query_params.get("day") or None
    if day is not None:
        try:
            dt.date.fromisoformat(day)
        except ValueError as exc:
            raise HTTPException(400, f"day must be YYYY-MM-DD, got {day!r}") from exc
    return day


def _safe(fn: Any, default: Any) -> Any:
    try:
        return fn()
    except FileNotFoundError:
        return default


def dumps(v: Any) -> str:
    return json.dumps(v, default=str)
