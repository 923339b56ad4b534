"""The durable record (SQLite): every intent before it is sent, fills, risk verdicts, equity; and the
restart reconciliation that reads it back.
"""
