"""Errors of the data layer, worded for the person who has to fix the files or the config."""

from __future__ import annotations


class DataError(Exception):
    """Bars could not be loaded (missing file, unreadable column, bad timestamp)."""
