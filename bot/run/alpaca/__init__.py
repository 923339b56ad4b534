"""The live driver on Alpaca (or soxbot's sandbox): the broker's clock, the bar loop, restart
reconciliation, and the start-up that wires them to the service."""

from bot.run.alpaca.clock import BrokerClock, Clock, missing_between, next_bar
from bot.run.alpaca.driver import AlpacaRun
from bot.run.alpaca.start import run_alpaca

__all__ = ["AlpacaRun", "BrokerClock", "Clock", "missing_between", "next_bar", "run_alpaca"]
