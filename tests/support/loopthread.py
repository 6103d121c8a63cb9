"""Run an async service on a thread of its own, with its own event loop, for tests whose
code under test is synchronous (the CLI's ``main``, schemathesis' requests)."""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable


class LoopThread(ABC):
    """Start with :meth:`start`, stop with :meth:`stop`. A subclass implements
    :meth:`serve`: set up, call ``ready()``, await ``stopped``, clean up; an exception
    from it is raised again by start() or stop()."""

    name = "test-loop-thread"
    timeout_s = 20.0

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name=self.name)

    @abstractmethod
    async def serve(self, ready: Callable[[], None], stopped: Awaitable[bool]) -> None:
        """The service's whole life on the thread's loop."""

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by start()/stop()
            self._error = exc
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.serve(self._ready.set, self._stop.wait())

    def start(self) -> None:
        """Start the thread and wait until the service is ready."""
        self._thread.start()
        assert self._ready.wait(self.timeout_s), f"{self.name} did not start"
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Ask the service to stop and wait for the thread to end."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self.timeout_s)
        assert not self._thread.is_alive(), f"{self.name} did not stop"
        if self._error is not None:
            raise self._error
