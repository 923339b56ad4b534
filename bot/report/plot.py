"""A small plotly figure builder: traces and layout as plain dicts, drawn by plotly.js inline.

The report used plotly's Python graph objects, whose validation and deep copies cost ~0.2-0.3 s per
report (and ~0.1 s to import), a large part of a short `soxbot backtest` process. The page needs
none of that: plotly.js reads the same JSON. This builds it directly, with plotly's own
`plotly_white` template and plotly.js from the installed plotly package (read as files, nothing
imported), in the page layout `plotly.io.to_html` writes. Float arrays go out as plotly's typed
arrays (`{"dtype": "f8", "bdata": base64}`, NaN a gap), as plotly itself encodes numpy arrays.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np


@cache
def _package_data() -> Path:
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("plotly is not installed (pip install plotly): the report embeds its plotly.js")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data"


@cache
def plotly_js() -> str:
    return (_package_data() / "plotly.min.js").read_text(encoding="utf-8")


@cache
def _template() -> dict[str, Any]:
    return json.loads((_package_data() / "templates" / "plotly_white.json").read_text(encoding="utf-8"))


def _encode(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        if o.dtype.kind in "fiub":
            a = np.ascontiguousarray(o, dtype="<f8")
            return {"dtype": "f8", "bdata": base64.b64encode(a.tobytes()).decode("ascii")}
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if hasattr(o, "to_numpy"):  # a pandas Series or Index
        return _encode(o.to_numpy())
    raise TypeError(f"cannot encode {type(o).__name__} for plotly.js")


def _merge(into: dict[str, Any], props: dict[str, Any]) -> None:
    """Nested update: {"line": {"color": c}} adds to an existing "line" dict."""
    for k, v in props.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def _axis(kind: str, i: int) -> str:
    return kind if i == 1 else f"{kind}{i}"


class Figure:
    """Rows of subplots on one shared x axis (the bottom row's), like make_subplots(shared_xaxes=True)."""

    def __init__(
        self, heights: list[float] | None = None, titles: list[str] | None = None, spacing: float = 0.04
    ) -> None:
        heights = heights or [1.0]
        self.rows = len(heights)
        self.data: list[dict[str, Any]] = []
        self.layout: dict[str, Any] = {"template": _template(), "annotations": [], "shapes": []}
        free = 1.0 - spacing * (self.rows - 1)
        total = sum(heights)
        top = 1.0
        for i, h in enumerate(heights, start=1):
            bottom = max(top - free * h / total, 0.0)
            x: dict[str, Any] = {"anchor": _axis("y", i), "domain": [0.0, 1.0]}
            if i < self.rows:
                x.update(matches=_axis("x", self.rows), showticklabels=False)
            self.layout[_axis("xaxis", i)] = x
            self.layout[_axis("yaxis", i)] = {"anchor": _axis("x", i), "domain": [bottom, top]}
            if titles:
                self.layout["annotations"].append(
                    {"text": titles[i - 1], "x": 0.5, "y": top, "xref": "paper", "yref": "paper",
                     "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 16}}
                )  # fmt: skip
            top = bottom - spacing

    def add_trace(self, trace: dict[str, Any], row: int = 1, col: int = 1) -> None:
        if self.rows > 1 or row != 1:
            trace = {**trace, "xaxis": _axis("x", row), "yaxis": _axis("y", row)}
        self.data.append(trace)

    def add_hline(
        self, y: float, line: dict[str, Any], row: int = 1, col: int = 1, layer: str = "above"
    ) -> None:
        self.layout["shapes"].append(
            {"type": "line", "xref": f"{_axis('x', row)} domain", "x0": 0, "x1": 1, "yref": _axis("y", row),
             "y0": y, "y1": y, "line": line, "layer": layer}
        )  # fmt: skip

    def add_vline(self, x: float, line: dict[str, Any], row: int = 1) -> None:
        self.layout["shapes"].append(
            {"type": "line", "yref": f"{_axis('y', row)} domain", "y0": 0, "y1": 1, "xref": _axis("x", row),
             "x0": x, "x1": x, "line": line}
        )  # fmt: skip

    def update_yaxes(self, row: int = 1, col: int = 1, **props: Any) -> None:
        _merge(self.layout[_axis("yaxis", row)], props)

    def update_xaxes(self, **props: Any) -> None:
        for i in range(1, self.rows + 1):
            _merge(self.layout[_axis("xaxis", i)], props)

    def update_layout(self, **props: Any) -> None:
        _merge(self.layout, props)

    def to_html(self, include_plotlyjs: bool = True) -> str:
        """A <div> with the chart, as plotly.io.to_html(full_html=False) writes it."""
        div = str(uuid.uuid4())
        data = json.dumps(self.data, default=_encode, allow_nan=False, separators=(",", ":"))
        layout = json.dumps(self.layout, default=_encode, allow_nan=False, separators=(",", ":"))
        lib = f"<script>{plotly_js()}</script>\n" if include_plotlyjs else ""
        return (
            f"<div>{lib}"
            f'<div id="{div}" class="plotly-graph-div" style="height:100%; width:100%;"></div>'
            f"<script>window.PLOTLYENV=window.PLOTLYENV || {{}};"
            f' if (document.getElementById("{div}")) {{ Plotly.newPlot("{div}", {data}, {layout},'
            ' {"responsive": true}) };</script></div>'
        )


def scatter(x: Any, y: Any, **props: Any) -> dict[str, Any]:
    """A scatter trace; `line_shape="hv"` style keys become nested ({"line": {"shape": "hv"}})."""
    trace: dict[str, Any] = {"type": "scatter", "x": x, "y": y}
    nested = {k: v for k, v in props.items() if "_" in k and k.split("_", 1)[0] in ("line", "marker")}
    for k, v in props.items():
        if k not in nested:
            trace[k] = dict(v) if isinstance(v, dict) else v
    for k, v in nested.items():
        head, tail = k.split("_", 1)
        trace.setdefault(head, {})[tail] = v
    return trace
