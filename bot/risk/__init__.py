"""Risk rules that stand alone: position sizing, stop prices, and the account limits (daily loss, kill
switch, max hold) that can veto an entry.
"""
