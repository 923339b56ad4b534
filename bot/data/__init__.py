"""The data layer: calendar, bar sources (CSV, synthetic), bad-bar cleaning, and `load_bars`.

Submodules are imported on demand so `import bot.data` stays light.
"""

from bot.data.errors import DataError

__all__ = ["DataError"]
