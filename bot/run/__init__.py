"""Drivers that put the stages together: backtest (+ event skipping), replay, the live Alpaca driver and
the long-lived service.
"""
