"""The engine: turns a decided direction into orders and keeps positions, through a broker and a
journal it is handed. The same engine runs in backtests and live.
"""
