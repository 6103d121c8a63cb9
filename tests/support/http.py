"""A small HTTP server on loopback for tests that check what HomeIQ sends (stand-ins for
InfluxDB's v2 API, alert webhooks)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def loopback_server(handle: Handler, *, auto_decompress: bool = True) -> AsyncIterator[str]:
    """Serve every method and path with ``handle`` on 127.0.0.1; yields the base URL.
    ``auto_decompress=False`` lets a test see a request body as it travelled."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, auto_decompress=auto_decompress)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
