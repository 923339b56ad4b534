"""soxbot as a long-lived service: market-aware scheduling, health and metrics, alerts, status.

Each module has one job and a small API the live driver wires together; none of them trades.
"""
