"""HomeIQ's HTTP API (FastAPI): see :mod:`homeiq.api.app` for the factory,
:mod:`homeiq.api.context` for the dependencies routes use, and
:mod:`homeiq.api.server` for serving it from the HomeIQ process."""
