"""Strategies: the plugin API, plugin discovery and checks, running indicators (steppers), the live
trailing window, and how several strategies' directions combine into one.
"""
