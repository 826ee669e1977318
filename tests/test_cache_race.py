"""Two writers that miss the record/replay cache on the same request at once: the first recording wins, everywhere.

The cache keeps the first answer recorded under a key (``INSERT OR IGNORE``). A writer that lost that race used
to carry on with its *own* answer, which the cache does not hold: its episode went on from an answer no replay
will ever see, so every later request of that episode was recorded under keys a replay cannot reach (a replay
of the same seed missed, e.g. at a simulated user's next turn). Now the loser adopts the recorded answer.

Two clients on two ``ResponseCache`` objects over one sqlite file stand for two processes sharing a cache. The
scripted server holds both requests until both are in flight (so both have missed), answers one, and answers
the other only once the first answer is in the file: the order is forced, never left to timing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from trustee_env.config import EndpointConfig
from trustee_env.errors import SimulatorOutputError
from trustee_env.llm.cache import ResponseCache
from trustee_env.llm.client import LLMClient
from trustee_env.llm.usage import Usage
from trustee_env.testing import FakeLLMServer

MESSAGES = [{"role": "user", "content": "What does the user say next?"}]


class Turn(BaseModel):
    message: str
    status: str


def _recorded(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


class RacingServer:
    """Answers the first request with ``first`` at once and the second with ``second`` once ``first`` is recorded."""

    def __init__(self, cache_file: Path, first: Any, second: Any) -> None:
        self.cache_file = cache_file
        self.answers = [first, second]
        self.both_in_flight = threading.Barrier(2, timeout=10)
        self.lock = threading.Lock()
        self.served = 0

    def __call__(self, role: str, request: dict[str, Any]) -> Any:
        self.both_in_flight.wait()  # both clients have looked the key up and missed
        with self.lock:
            turn = self.served
            self.served += 1
        if turn == 1:
            deadline = time.monotonic() + 10
            while _recorded(self.cache_file) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        return self.answers[turn]


def _clients(base_url: str, cache_file: Path, **endpoint: Any) -> list[LLMClient]:
    config = EndpointConfig(base_url=base_url, model="fake-model", timeout=15.0, max_retries=0, **endpoint)
    return [LLMClient("user", config, cache=ResponseCache(cache_file)) for _ in range(2)]


async def _both(clients: list[LLMClient], ask: Any) -> list[Any]:
    return list(await asyncio.gather(*(ask(client) for client in clients), return_exceptions=True))


@pytest.mark.parametrize("kind", ["structured", "chat"])
def test_the_writer_that_lost_the_race_carries_on_with_the_recorded_answer(tmp_path: Path, kind: str) -> None:
    cache_file = tmp_path / "cache.sqlite"
    if kind == "structured":
        first, second = (
            {"message": "I need a table for 4.", "status": "continue"},
            {"message": "Bye.", "status": "satisfied"},
        )
    else:
        first, second = "I need a table for 4.", "Bye."
    server = RacingServer(cache_file, first, second)
    with FakeLLMServer(server) as fake:
        clients = _clients(fake.base_url, cache_file)

        async def ask(client: LLMClient) -> Any:
            if kind == "structured":
                return (await client.structured(MESSAGES, Turn, seed=7, usage=Usage())).model_dump()
            return (await client.chat(MESSAGES, seed=7, usage=Usage()))["content"]

        answers = asyncio.run(_both(clients, ask))
    assert server.served == 2  # both really asked the model
    assert answers == [first, first]  # the loser did not go on with "second"
    assert _recorded(cache_file) == 1
    replay = LLMClient("user", clients[0].endpoint, cache=ResponseCache(cache_file, mode="replay_only"))
    again = asyncio.run(ask(replay))
    assert again == first  # what a replay sees is what both live runs saw


def test_a_failure_that_lost_the_race_to_a_recorded_answer_returns_that_answer(tmp_path: Path) -> None:
    cache_file = tmp_path / "cache.sqlite"
    good = {"message": "I need a table for 4.", "status": "continue"}
    server = RacingServer(cache_file, good, "not json at all")
    with FakeLLMServer(server) as fake:
        clients = _clients(fake.base_url, cache_file, max_repairs=0)

        async def ask(client: LLMClient) -> Any:
            return (await client.structured(MESSAGES, Turn, seed=7, usage=Usage())).model_dump()

        answers = asyncio.run(_both(clients, ask))
    assert answers == [good, good]  # not a SimulatorOutputError the cache does not hold


def test_an_answer_that_lost_the_race_to_a_recorded_failure_raises_that_failure(tmp_path: Path) -> None:
    cache_file = tmp_path / "cache.sqlite"
    server = RacingServer(cache_file, "not json at all", {"message": "Hello.", "status": "continue"})
    with FakeLLMServer(server) as fake:
        clients = _clients(fake.base_url, cache_file, max_repairs=0)

        async def ask(client: LLMClient) -> Any:
            return (await client.structured(MESSAGES, Turn, seed=7, usage=Usage())).model_dump()

        answers = asyncio.run(_both(clients, ask))
    assert all(isinstance(answer, SimulatorOutputError) for answer in answers), answers
