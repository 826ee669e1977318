"""Process-wide concurrency limits and endpoint selection, shared by every event loop.

An ``asyncio.Semaphore`` belongs to one loop, but a process may drive episodes from the
sync portal's loop and from a user's loop at once; the limit must hold across both
(DESIGN, smaller points). ``EndpointLimiter`` is a thread-safe counting semaphore whose
waiters are futures on their own loops.

Throttling is never silent: the first request that has to wait for a slot logs one warning
per endpoint, and every wait is counted (``EndpointLimiter.queued``, and per role in
``Usage`` as ``queued`` / ``queue_wait_s``, which ``env.unwrapped.stats["usage"]`` sums).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque

__all__ = ["EndpointLimiter", "EndpointPool", "limiter_for", "pool_for"]

logger = logging.getLogger("trustee_env")


class EndpointLimiter:
    """A counting semaphore usable from any event loop in the process.

    Args:
        limit: slots (requests in flight).
        name: what the warning calls it (the base URL).
    """

    def __init__(self, limit: int, name: str = "") -> None:
        self.limit = limit
        self.name = name
        self.queued = 0  # acquisitions that had to wait for a slot
        self._free = limit
        self._warned = False
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def in_flight(self) -> int:
        """Slots currently held."""
        return self.limit - self._free

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot right now."""
        return len(self._waiters)

    def raise_limit(self, limit: int) -> None:
        """Grow the limit to ``limit`` (never shrinks), handing the new slots to waiters first."""
        with self._lock:
            extra = limit - self.limit
            if extra <= 0:
                return
            self.limit = limit
            woken = [self._waiters.popleft() for _ in range(min(extra, len(self._waiters)))]
            self._free += extra - len(woken)
        for loop, future in woken:
            try:
                loop.call_soon_threadsafe(self._grant, future)
            except RuntimeError:  # the waiter's loop is closed: pass the slot on
                self.release()

    async def acquire(self) -> bool:
        """Wait for a slot; True when the request had to queue behind the limit."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return False
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
            self.queued += 1
            warn, self._warned = not self._warned, True
        if warn:
            logger.warning(
                "trustee: requests to %s are queuing behind its concurrency limit (%d in flight, per process); "
                "if the server can take more, raise `concurrency` (stats: env.unwrapped.stats['usage'].queued)",
                self.name or "an endpoint",
                self.limit,
            )
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                try:
                    self._waiters.remove((loop, future))
                    granted = False
                except ValueError:
                    granted = True
            if granted:
                self.release()
            raise
        return True

    def release(self) -> None:
        """Give a slot back, handing it to the oldest waiter if any."""
        with self._lock:
            if not self._waiters:
                self._free += 1
                return
            loop, future = self._waiters.popleft()
        try:
            loop.call_soon_threadsafe(self._grant, future)
        except RuntimeError:  # the waiter's loop is closed: pass the slot on
            self.release()

    @staticmethod
    def _grant(future: asyncio.Future[None]) -> None:
        # A waiter cancelled after the hand-over gives the slot back itself (see ``acquire``).
        if not future.done():
            future.set_result(None)

    async def __aenter__(self) -> EndpointLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class EndpointPool:
    """Several base URLs serving one role: least-loaded choice, failover when one dies."""

    def __init__(self, urls: list[str], cooldown_s: float = 5.0) -> None:
        self.urls = list(urls)
        self.cooldown_s = cooldown_s
        self._in_flight = dict.fromkeys(self.urls, 0)
        self._down_until = dict.fromkeys(self.urls, 0.0)
        self._lock = threading.Lock()

    def choose(self, exclude: set[str] | frozenset[str] = frozenset()) -> str:
        """The healthy URL with the fewest requests in flight (a dead one only if all are)."""
        now = time.monotonic()
        with self._lock:
            candidates = [url for url in self.urls if url not in exclude] or list(self.urls)
            healthy = [url for url in candidates if self._down_until[url] <= now] or candidates
            url = min(healthy, key=lambda u: (self._in_flight[u], self.urls.index(u)))
            self._in_flight[url] += 1
            return url

    def done(self, url: str, *, failed: bool = False) -> None:
        """Report a finished request; a connection failure takes the URL out for a while."""
        with self._lock:
            self._in_flight[url] -= 1
            if failed:
                self._down_until[url] = time.monotonic() + self.cooldown_s
            else:
                self._down_until[url] = 0.0


_limiters: dict[str, EndpointLimiter] = {}
_pools: dict[tuple[str, ...], EndpointPool] = {}
_registry_lock = threading.Lock()


def limiter_for(url: str, limit: int) -> EndpointLimiter:
    """The process-wide limiter of one base URL; the largest limit any caller asked for holds."""
    with _registry_lock:
        limiter = _limiters.get(url)
        if limiter is None:
            return _limiters.setdefault(url, EndpointLimiter(limit, name=url))
    if limit > limiter.limit:
        limiter.raise_limit(limit)
    return limiter


def pool_for(urls: list[str]) -> EndpointPool:
    """The process-wide pool for a list of base URLs."""
    key = tuple(urls)
    with _registry_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = EndpointPool(urls)
        return pool
