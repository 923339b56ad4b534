"""What a finished sweep says: the best trial, how robust its neighbourhood is (plateau), and
whether it beats what the best of that many tries reaches by luck (DSR, PBO)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bot.research.curves import score
from bot.research.stats import deflated_sharpe, pbo, sharpe


def neighbour_scores(
    ok: pd.DataFrame, keys: list[str], values: dict[str, list[Any]], objective: str
) -> pd.Series:
    """Per trial, the mean objective of its grid neighbours (one step along one key) and itself:
    a peak on a plateau keeps its score, a lone spike does not."""
    pos = {k: {v: i for i, v in enumerate(values[k])} for k in keys}
    sc = pd.Series([score({objective: _f(v)}, objective) for v in ok[objective]], index=ok.index)
    at = {tuple(pos[k].get(_key(r[k], values[k])) for k in keys): sc[i] for i, r in ok.iterrows()}
    out = {}
    for i, r in ok.iterrows():
        here = [pos[k].get(_key(r[k], values[k])) for k in keys]
        vals = [sc[i]]
        for d in range(len(keys)):
            for step in (-1, 1):
                nb = list(here)
                if nb[d] is None:
                    continue
                nb[d] += step
                v = at.get(tuple(nb))
                if v is not None:
                    vals.append(v)
        finite = [v for v in vals if math.isfinite(v)]
        out[i] = float(np.mean(finite)) if finite else -math.inf
    return pd.Series(out)


def _key(v: Any, choices: list[Any]) -> Any:
    """The grid value a CSV cell stands for (CSV reads 5 back as 5 or 5.0)."""
    for c in choices:
        if c == v or (isinstance(c, int | float) and isinstance(v, int | float) and math.isclose(c, v)):
            return c
    return v


def _f(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def analyse(out: Path, results: pd.DataFrame, manifest: dict[str, Any], n_blocks: int = 16) -> dict[str, Any]:
    """summary.json's content: counts, best trial, plateau, DSR over every trial, PBO by CSCV."""
    objective = manifest["objective"]
    keys = [d["key"] for d in manifest["dims"]]
    ok = results[results["status"] == "ok"]
    summary: dict[str, Any] = {
        "objective": objective,
        "method": manifest["method"],
        "seed": manifest["seed"],
        "trials_run": len(results),
        "trials_ok": len(ok),
        "trials_invalid": int((results["status"] == "invalid").sum()),
        "trials_error": int((results["status"] == "error").sum()),
    }
    if ok.empty:
        return summary
    returns = np.load(out / "returns.npy", mmap_mode="r")
    rows = ok["trial"].astype(int).to_numpy()
    srs = np.array([sharpe(returns[i]) for i in rows])
    scores = np.array([score({objective: _f(v)}, objective) for v in ok[objective]])
    best_pos = int(np.argmax(scores))
    best = ok.iloc[best_pos]
    values = {d["key"]: d["values"] for d in manifest["dims"]}
    plateau = neighbour_scores(ok, keys, values, objective)
    summary["best"] = {
        "trial": int(best["trial"]),
        "params": {k: _plain(best[k]) for k in keys},
        **{
            c: _f(best[c]) for c in ("sharpe", "cagr", "total_return", "max_drawdown", "n_trades", "exposure")
        },
        "plateau_score": float(plateau.loc[ok.index[best_pos]]),
    }
    dsr = deflated_sharpe(np.asarray(returns[rows[best_pos]]), srs)
    summary["deflated_sharpe"] = {k: (float(v) if isinstance(v, float) else v) for k, v in dsr.items()}
    if len(rows) >= 2:
        try:
            p = pbo(np.asarray(returns[rows]).T, n_blocks)
            summary["pbo"] = {"pbo": p["pbo"], "n_splits": p["n_splits"], "n_blocks": n_blocks}
            summary["_logits"] = p["logits"]
        except ValueError as exc:
            summary["pbo"] = {"skipped": str(exc)}
    summary["_plateau"] = plateau
    return summary


def _plain(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _verdict(p: float) -> str:
    return "significant" if p > 0.95 else "not significant"


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    clean = {k: v for k, v in summary.items() if not k.startswith("_")}
    (out / "summary.json").write_text(json.dumps(clean, indent=1, default=_plain, allow_nan=False))


def write_html(
    out: Path,
    results: pd.DataFrame,
    summary: dict[str, Any],
    manifest: dict[str, Any],
    heat: list[str] | None = None,
    synthetic: bool = False,
) -> None:
    import plotly.graph_objects as go

    from bot.research.pages import kv_table, note, table, write_page

    objective = manifest["objective"]
    keys = [d["key"] for d in manifest["dims"]]
    ok = results[results["status"] == "ok"].copy()
    parts: list[Any] = [
        note(
            f"{summary['trials_ok']} trials ran ({summary['trials_invalid']} points were not valid configs, "
            f"{summary['trials_error']} failed); method {manifest['method']}, seed {manifest['seed']}, "
            f"objective {objective}. Every trial counts in the Deflated Sharpe Ratio."
        )
    ]
    if ok.empty:
        write_page(out / "report.html", "Sweep", parts, synthetic)
        return
    ok["score"] = [score({objective: _f(v)}, objective) for v in ok[objective]]
    ok["plateau"] = summary["_plateau"]
    parts.append("<h2>Is the best more than luck?</h2>")
    d = summary["deflated_sharpe"]
    stats = {
        "best trial": summary["best"]["trial"],
        "best params": json.dumps(summary["best"]["params"]),
        "Sharpe (per bar / annualised)": f"{d['sr']:.4f} / {summary['best']['sharpe']:.3f}",
        "expected max Sharpe of the trials by luck (per bar)": f"{d['sr0']:.4f}",
        "Deflated Sharpe Ratio": f"{d['dsr']:.3f} ({_verdict(d['dsr'])} at 5%)",
        "trials counted": d["n_trials"],
    }
    if "pbo" in summary and "pbo" in summary["pbo"]:
        stats["Probability of Backtest Overfitting (CSCV)"] = (
            f"{summary['pbo']['pbo']:.3f} over {summary['pbo']['n_splits']} splits"
        )
    parts.append(kv_table(stats))
    if "_logits" in summary:
        parts.append(
            go.Figure(go.Histogram(x=summary["_logits"], nbinsx=40)).update_layout(
                title="CSCV: logit of the in-sample best's out-of-sample rank (<= 0: below the median)",
                height=320,
                xaxis_title="logit",
                yaxis_title="splits",
            )
        )
    varied = [k for k in keys if ok[k].nunique() > 1]
    hx = heat or varied[:2]
    if len(hx) == 2:
        pv = ok.pivot_table(index=hx[1], columns=hx[0], values="score", aggfunc="max")
        parts.append(
            go.Figure(
                go.Heatmap(
                    z=pv.to_numpy(),
                    x=[str(c) for c in pv.columns],
                    y=[str(i) for i in pv.index],
                    colorscale="Viridis",
                    colorbar={"title": objective},
                )
            ).update_layout(
                title=f"{objective}: best over the other keys",
                xaxis_title=hx[0],
                yaxis_title=hx[1],
                height=520,
            )
        )
    for k in varied:
        g = ok[np.isfinite(ok["score"])].groupby(k)["score"]
        fig = go.Figure(
            [
                go.Scatter(x=g.max().index, y=g.max(), name="best", mode="lines+markers"),
                go.Scatter(x=g.median().index, y=g.median(), name="median", mode="lines+markers"),
            ]
        )
        parts.append(fig.update_layout(title=f"plateau: {objective} by {k}", xaxis_title=k, height=300))
    top = ok.sort_values("score", ascending=False).head(20)
    cols = ["trial", *keys, "sharpe", "cagr", "max_drawdown", "n_trades", "exposure", "plateau"]
    parts += [
        "<h2>Top 20 trials</h2>",
        note("plateau: mean objective of the trial and its grid neighbours (one step along one key)."),
        table(top[cols]),
    ]
    write_page(out / "report.html", "Sweep", parts, synthetic)
