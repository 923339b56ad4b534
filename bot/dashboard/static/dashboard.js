// The chart and equity pages: JSON from /api/, drawn with plotly.js (served from the installed plotly package).
window.soxbot = (function () {
  "use strict";
  function get(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }
  function every(ms, live, fn) {
    fn();
    if (live) { setInterval(fn, ms); }
  }
  function note(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text || ""; }
  }
  function chart(div, live) {
    every(3000, live, function () {
      get("/api/chart").then(function (d) {
        var s = d.signal || {};
        if (!s.ts || !s.ts.length) { note("chart-note", d.error || "no bars yet"); return; }
        note("chart-note", s.symbol + ": " + s.ts.length + " bars, last " + s.ts[s.ts.length - 1].slice(0, 16));
        var traces = [{ type: "candlestick", x: s.ts, open: s.open, high: s.high, low: s.low, close: s.close,
                        name: s.symbol, xaxis: "x", yaxis: "y" }];
        var hasOsc = false;
        Object.keys(d.indicators || {}).forEach(function (k) {
          var ind = d.indicators[k];
          if (!ind.overlay) { hasOsc = true; }
          traces.push({ type: "scatter", mode: "lines", x: ind.ts, y: ind.values, name: k,
                        xaxis: "x", yaxis: ind.overlay ? "y" : "y3", line: { width: 1 } });
        });
        Object.keys(d.traded || {}).forEach(function (sym) {
          var t = d.traded[sym];
          traces.push({ type: "scatter", mode: "lines", x: t.ts, y: t.values, name: sym, xaxis: "x", yaxis: "y2" });
        });
        var fills = d.fills || [];
        ["buy", "sell"].forEach(function (side) {
          var f = fills.filter(function (x) { return x.side === side; });
          traces.push({ type: "scatter", mode: "markers", x: f.map(function (x) { return x.ts; }),
                        y: f.map(function (x) { return x.price; }), name: side === "buy" ? "entries (buys)" : "exits (sells)",
                        text: f.map(function (x) { return x.symbol + " " + x.qty + " " + x.client_order_id; }),
                        marker: { symbol: side === "buy" ? "triangle-up" : "triangle-down", size: 10,
                                  color: side === "buy" ? "#137a2f" : "#b3261e" }, xaxis: "x", yaxis: "y2" });
        });
        var layout = { margin: { t: 20, l: 60, r: 20, b: 30 }, showlegend: true, legend: { orientation: "h" },
                       xaxis: { rangeslider: { visible: false }, anchor: "y3" },
                       yaxis: { domain: hasOsc ? [0.5, 1] : [0.4, 1], title: s.symbol },
                       yaxis2: { domain: hasOsc ? [0.22, 0.47] : [0, 0.37], title: "traded (log)", type: "log" },
                       yaxis3: { domain: [0, hasOsc ? 0.18 : 0.01], title: hasOsc ? "indicators" : "" } };
        Plotly.react(div, traces, layout, { responsive: true, displaylogo: false });
      }).catch(function (e) { note("chart-note", String(e)); });
    });
  }
  function equity(div, live) {
    every(5000, live, function () {
      get("/api/equity").then(function (d) {
        if (!d.ts || !d.ts.length) { note("equity-note", "no equity recorded yet"); return; }
        note("equity-note", d.ts.length + " points, last " + d.ts[d.ts.length - 1].slice(0, 16));
        var traces = [
          { type: "scatter", mode: "lines", x: d.ts, y: d.equity, name: "equity" },
          { type: "scatter", mode: "lines", x: d.ts, y: d.buy_and_hold, name: "buy & hold " + (d.signal || ""), line: { dash: "dot" } },
          { type: "scatter", mode: "lines", x: d.ts, y: d.drawdown, name: "drawdown", yaxis: "y2", fill: "tozeroy", line: { color: "#b3261e" } }
        ];
        var layout = { margin: { t: 20, l: 70, r: 20, b: 30 }, legend: { orientation: "h" },
                       yaxis: { domain: [0.35, 1], title: "equity" },
                       yaxis2: { domain: [0, 0.3], title: "drawdown", tickformat: ".1%" } };
        Plotly.react(div, traces, layout, { responsive: true, displaylogo: false });
      }).catch(function (e) { note("equity-note", String(e)); });
    });
  }
  return { chart: chart, equity: equity };
})();
