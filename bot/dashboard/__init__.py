"""A read-only dashboard: served by the running service, or by `soxbot dashboard --journal` at rest."""
