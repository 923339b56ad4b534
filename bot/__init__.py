"""soxbot: an event-driven trading bot for the semiconductor sector."""

__version__ = "0.1.0"
