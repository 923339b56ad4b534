"""Broker adapters: the in-process paper broker (`sim`) and Alpaca (`alpaca`)."""
