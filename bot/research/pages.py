"""Self-contained HTML pages for research reports: plotly's JavaScript is embedded once, so a page
opens offline in any browser."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.note{color:#555;font-size:.92em;max-width:75em}
"""


def table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "" if v != v else floatfmt.format(v)
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in df.itertuples(False))
    return f"<table><tr>{head}</tr>{rows}</table>"


def kv_table(d: dict[str, Any]) -> str:
    return table(pd.DataFrame({"item": list(d), "value": [_fmt(v) for v in d.values()]}))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def write_page(path: Path, title: str, parts: list[Any], synthetic: bool = False) -> None:
    """`parts`: HTML strings and plotly figures, in order; the first figure carries plotly.js.
    Results on the synthetic market say so in the title, as everywhere in soxbot."""
    if synthetic:
        title = f"{title}: SYNTHETIC DATA"
    body: list[str] = [f"<h1>{html.escape(title)}</h1>"]
    js = True
    for p in parts:
        if isinstance(p, str):
            body.append(p)
        else:
            body.append(p.to_html(full_html=False, include_plotlyjs=js, config={"responsive": True}))
            js = False
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
