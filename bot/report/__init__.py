"""What a run shows: metrics, the HTML report, and the files a backtest writes.
"""
