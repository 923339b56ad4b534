"""The peer side of the whole-process comparison (bench/whole_process.py): an SMA 20/50 cross on SOXX
daily in backtesting.py, long only, all-in at the next open, with its HTML report written. Run in a
venv of its own (`pip install backtesting`); it never imports soxbot."""

from __future__ import annotations

import sys

import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import SMA

FAST, SLOW = 20, 50


class SmaCross(Strategy):
    def init(self) -> None:
        self.fast = self.I(SMA, self.data.Close, FAST)
        self.slow = self.I(SMA, self.data.Close, SLOW)

    def next(self) -> None:
        if crossover(self.fast, self.slow):
            self.buy()
        elif crossover(self.slow, self.fast):
            self.position.close()


def main(path: str, out: str) -> None:
    df = pd.read_csv(path, index_col="timestamp", parse_dates=True)
    df = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    bt = Backtest(df, SmaCross, cash=100_000, finalize_trades=True)
    stats = bt.run()
    print(f"trades {stats['# Trades']}  return {stats['Return [%]']:.2f}%")
    if out:  # its report, as soxbot writes report.html
        bt.plot(filename=out, open_browser=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
