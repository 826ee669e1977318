"""A process-wide background event loop that the sync API hands coroutines to.

The sync ``reset``/``step`` must work where a loop is already running (Jupyter), where
``asyncio.run`` fails. So every sync call runs its coroutine on one daemon thread's loop
and blocks on the result; the async twins (``areset``/``astep``) run on the caller's loop.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from trustee_env.errors import EpisodeStateError

__all__ = ["Portal", "portal"]

T = TypeVar("T")


class Portal:
    """One event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="trustee-loop", daemon=True)
        self._thread.start()

    def run(self, factory: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``factory()`` on the portal's loop and wait for its result.

        A factory, not a coroutine, so nothing is created (and left un-awaited) if the call
        is refused. On timeout or KeyboardInterrupt the coroutine is cancelled.
        """
        if threading.current_thread() is self._thread:
            raise EpisodeStateError(
                "the sync Trustee API was called from Trustee's own event loop; use `await env.unwrapped.astep(...)`"
            )

        async def runner() -> T:
            return await factory()

        future = asyncio.run_coroutine_threadsafe(runner(), self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop (at interpreter exit)."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=2)


_portal: Portal | None = None
_lock = threading.Lock()


def portal() -> Portal:
    """The process-wide portal, started on first use."""
    global _portal
    with _lock:
        if _portal is None:
            _portal = Portal()
            atexit.register(_portal.close)
        return _portal
