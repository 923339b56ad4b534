"""Research on top of backtests: parameter sweeps, walk-forward, Monte Carlo and the statistics that
say whether a result is more than luck (Deflated Sharpe Ratio, PBO, a random-entry baseline).

It sits above `bot.run` (backtests) and `bot.report` (their metrics) and below the CLI. Work fans out
through one `concurrent.futures`-shaped seam (`executor.py`): serially, on a local process pool, or on
a Dask cluster, with identical results.
"""
