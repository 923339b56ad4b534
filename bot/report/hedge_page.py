"""The HTML page of `soxbot hedge`: one self-contained file (plotly.js inline) with the table's figures,
the holdings' betas, the distribution of the backtest's returns with and without the hedge, and the
portfolio over the history with and without it (re-hedged every window, windows end to end)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def write_hedge_page(path: Path, report: dict[str, Any], text: str, plots: dict[str, Any]) -> None:
    bt = plots["backtest"]
    frame = plots["frame"]
    betas = plots["betas"]
    h = report["backtest"]["horizon"]
    fig = make_subplots(
        rows=3,
        cols=1,
        subplot_titles=(
            f"beta to {report['index']} ({report['beta_window']} sessions)",
            f"{h}-session returns: without and with the hedge",
            f"the portfolio re-hedged every {h} sessions (current weights), growth of 1",
        ),
        vertical_spacing=0.09,
    )
    fig.add_trace(go.Bar(x=list(betas), y=list(betas.values()), name="beta"), row=1, col=1)
    for name, r in (("without hedge", bt.without), ("with hedge", bt.with_hedge)):
        fig.add_trace(go.Histogram(x=r * 100, name=name, opacity=0.6, nbinsx=60), row=2, col=1)
    chained = bt.starts[::h]
    dates = frame.index[np.r_[chained, chained[-1] + h]]
    for name, r in (("without hedge", bt.without[::h]), ("with hedge", bt.with_hedge[::h])):
        fig.add_trace(go.Scatter(x=dates, y=np.r_[1.0, np.cumprod(1 + r)], name=name), row=3, col=1)
    fig.update_layout(barmode="overlay", height=1100, template="plotly_white", title="soxbot hedge")
    fig.update_xaxes(title_text="% return", row=2, col=1)
    chart = fig.to_html(full_html=False, include_plotlyjs=True, config={"responsive": True})
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>soxbot hedge</title></head><body>"
        f"<pre>{html.escape(text)}</pre>{chart}</body></html>"
    )
    path.write_text(page, encoding="utf-8")
