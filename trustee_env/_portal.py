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

__all__ = ["Portal", "cancel_other_tasks", "portal"]

T = TypeVar("T")


async def cancel_other_tasks() -> None:
    """Cancel every other task on the running loop and wait for them to finish.

    What ``asyncio.run`` does on the way out, for loops run by hand: tasks get to run their ``finally``
    blocks (the LLM transport closes its HTTP sessions in one) before the loop stops.
    """
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


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
        """Cancel what still runs on the loop (so HTTP sessions close), then stop and close it (at exit)."""
        if self.loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(cancel_other_tasks(), self.loop).result(timeout=2)
            except Exception:  # a stuck task must not block interpreter exit
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=2)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


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
