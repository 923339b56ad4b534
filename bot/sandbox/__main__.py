"""`python -m bot.sandbox [--port 0] [--data-dir DIR] ...`: run the local Alpaca-compatible sandbox."""

import sys

from bot.sandbox.app import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
