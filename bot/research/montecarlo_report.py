"""The Monte Carlo report page: distributions of CAGR and max drawdown, and the random baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def write_mc_html(
    out: Path,
    summary: dict[str, Any],
    boot: dict[str, np.ndarray],
    pert: pd.DataFrame | None,
    base: dict[str, Any] | None,
    synthetic: bool = False,
) -> None:
    import plotly.graph_objects as go

    from bot.research.pages import kv_table, note, write_page

    actual = summary["actual"]

    def hist(x: np.ndarray, title: str, mark: float | None, pct: bool = True) -> Any:
        fig = go.Figure(go.Histogram(x=np.asarray(x, float) * (100 if pct else 1), nbinsx=60))
        if mark is not None:
            fig.add_vline(
                x=mark * (100 if pct else 1), line_dash="dash", line_color="red", annotation_text="backtest"
            )
        return fig.update_layout(title=title, height=320, xaxis_title="%" if pct else "", yaxis_title="runs")

    b = summary["bootstrap"]
    parts: list[Any] = [
        note(
            f"Resampled: the strategy's per-bar compounded returns from {summary['period']['start'][:10]} to "
            f"{summary['period']['end'][:10]} (after warm-up), {b['runs']} paths of circular blocks of "
            f"{b['block_bars']} bars, seed {summary['seed']}. Returns, never dollar P&L: a drawdown can "
            "reach -100% at worst."
        ),
        hist(boot["cagr"], "Bootstrap: CAGR", actual["cagr"]),
        hist(-boot["max_drawdown"], "Bootstrap: max drawdown (never below -100%)", -actual["max_drawdown"]),
        kv_table(
            {f"CAGR {k}": f"{v:+.2%}" for k, v in b["cagr"].items()}
            | {f"max drawdown {k}": f"{v:.2%}" for k, v in b["max_drawdown"].items()}
            | {"P(loss over the period)": f"{b['p_loss']:.1%}"}
        ),
    ]
    if pert is not None:
        p = summary["perturbed"]
        parts += [
            "<h2>Perturbed bars</h2>",
            note(
                f"{p['runs']} backtests, every bar's prices multiplied by exp(N(0, {p['bps']:g} bps)), "
                "each run with its own seed."
            ),
            hist(pert["cagr"].astype(float), "Perturbed bars: CAGR", actual["cagr"]),
            hist(
                -pert["max_drawdown"].astype(float), "Perturbed bars: max drawdown", -actual["max_drawdown"]
            ),
        ]
    if base is not None:
        parts += [
            "<h2>Random-entry baseline</h2>",
            note(
                f"{base['n_random']} random strategies with the strategy's {base['n_trades']} holding "
                f"lengths, exposure ({base['exposure']:.1%}) and sides {base['sides']}, at random places; "
                "Sharpe per bar on close-to-close returns of the traded instruments for both."
            ),
            hist(
                base["random_sharpes"],
                "Random strategies' Sharpe (per bar)",
                base["strategy_sharpe_per_bar"],
                False,
            ),
            kv_table(
                {
                    "p-value": f"{base['p_value']:.4f}",
                    "verdict": "significant at 5%" if base["p_value"] < 0.05 else "not significant at 5%",
                }
            ),
        ]
    write_page(out / "report.html", "Monte Carlo", parts, synthetic)
