"""Plain types, settings and pure rules every stage uses: events, ids, config, logging, the fill model,
the Alpaca HTTP hardening. Imports nothing else of the bot.
"""
