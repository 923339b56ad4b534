"""soxbot's local Alpaca-compatible paper broker (server side). See bot/sandbox/app.py."""

from bot.sandbox.app import SandboxServer, build_app, main, run, serve_in_thread

__all__ = ["SandboxServer", "build_app", "main", "run", "serve_in_thread"]
