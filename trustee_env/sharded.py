"""``ShardedVectorEnv``: the vector env spread over worker processes, for machines with many cores.

One Python process is one GIL: a single :class:`~trustee_env.vector.TrusteeVectorEnv` spends its
CPU (prompt rendering, JSON, validation) on one core however many episodes are in flight.
``gym.make_vec("Trustee-v0", num_envs=N, group_size=G, processes=P)`` starts P worker processes
(``multiprocessing`` *spawn*: no forked threads or event loops), each owning a ``TrusteeVectorEnv``
over a contiguous block of slots (whole GRPO groups, so a group never spans processes) with its
own event loop, LM clients and per-endpoint concurrency limit. The parent only routes: it sends
each worker its slice of the actions over a pipe and merges the answers in slot order. The vector
API is unchanged: same spaces, ``NEXT_STEP`` autoreset, batched infos with ``_key`` masks, stats.

Same seed, same tasks: a shard plays exactly the tasks (and simulator seeds) its slots would play
in one process, because task seeds and group ids use global slot indices.

Curriculum: the parent owns the rule. Workers read settings from a copy of it (re-sent whenever
its pickled state changes, so ``update()`` in the parent reaches them on the next ``step``) and
never change it; the episodes they finish are reported back and fed to the parent's rule in slot
order, which also fills ``info["curriculum"]``. So the rule's ``task_settings`` must depend only on
its state and the given rng (true of the built-in rules), and the rule must pickle.

Trajectories: every worker appends to the same ``trajectory_path``. Each line is one ``write(2)``
with ``O_APPEND``, which Linux keeps whole on a local filesystem; on NFS give each run its own file.

Worker lifetime: ``close()`` asks each worker to stop, then ends it by PID (SIGTERM, then
SIGKILL); a worker also exits when its pipe closes or its parent process is gone (checked twice
a second), and ignores Ctrl-C (the parent handles it and closes the workers).

Scripts that create one need the ``if __name__ == "__main__":`` guard (spawn re-imports ``__main__``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv

from trustee_env.catalog import Catalog
from trustee_env.config import TrusteeConfig
from trustee_env.curriculum import CurriculumRule, ReportsProgress
from trustee_env.errors import ConfigError, EpisodeStateError, TrusteeError
from trustee_env.llm.usage import RoleUsage, Usage
from trustee_env.runtime import (
    check_render_mode,
    check_reset_options,
    check_vector_layout,
    resolve_config,
    resolve_curriculum,
)
from trustee_env.spaces import ChatAction, ChatObservation
from trustee_env.vector import TrusteeVectorEnv

__all__ = ["ShardedVectorEnv", "WorkerError", "make_vector_env"]

Results = tuple[tuple[dict[str, Any], ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


class WorkerError(TrusteeError, RuntimeError):
    """A worker process died, or failed with an error that could not be sent back as itself."""


def make_vector_env(
    num_envs: int = 1,
    group_size: int = 1,
    render_mode: str | None = None,
    *,
    processes: int | None = None,
    **kwargs: Any,
) -> VectorEnv:
    """``Trustee-v0``'s vector entry point: one process (``processes`` None or 0), else P worker processes."""
    in_process = processes is None or (
        not isinstance(processes, bool) and isinstance(processes, int) and processes == 0
    )
    if in_process:
        return TrusteeVectorEnv(num_envs, group_size, render_mode, **kwargs)
    return ShardedVectorEnv(num_envs, group_size, render_mode, processes=processes, **kwargs)


class ShardedVectorEnv(VectorEnv):
    """N Trustee episodes in GRPO groups of ``group_size``, stepped by ``processes`` worker processes.

    Behaves like :class:`~trustee_env.vector.TrusteeVectorEnv` (same spaces, autoreset, infos, seeds
    and tasks); see the module docstring for what differs (curriculum copies, worker lifetime).

    Args:
        num_envs: number of sub-episodes N.
        group_size: G, members per GRPO group; must divide N.
        render_mode: ``"ansi"``, ``"human"`` or None, as for the single-process vector env.
        processes: P worker processes, 1 to N // G. The groups are split into P contiguous blocks
            whose sizes differ by at most one group.
        config: a :class:`~trustee_env.config.TrusteeConfig`; keyword arguments override its fields.
            It is resolved here, so an embedded server is started (or found) once, by this process,
            and the workers share it through its URL.
        catalog: a :class:`~trustee_env.catalog.Catalog` (sent to each worker) or a path.
        curriculum: a rule object or a name; it stays in this process (see the module docstring).
        start_timeout: seconds to wait for every worker to be ready.
        **kwargs: every other field of ``TrusteeConfig``.

    Attributes:
        shards: ``(first_slot, end_slot)`` of every worker, in slot order.
        pids: the worker processes' ids.
    """

    metadata: ClassVar[dict[str, Any]] = TrusteeVectorEnv.metadata

    def __init__(
        self,
        num_envs: int = 1,
        group_size: int = 1,
        render_mode: str | None = None,
        *,
        processes: int = 2,
        config: TrusteeConfig | None = None,
        catalog: Catalog | str | None = None,
        curriculum: Any = None,
        start_timeout: float = 120.0,
        **kwargs: Any,
    ) -> None:
        self._workers: list[_Worker] = []  # first, so close() works whatever fails below
        check_vector_layout(num_envs, group_size)
        if isinstance(processes, bool) or not isinstance(processes, (int, np.integer)) or processes < 1:
            raise ConfigError(f"processes must be a positive int, got {processes!r}")
        if processes > num_envs // group_size:
            raise ConfigError(
                f"processes ({processes}) must be at most the number of GRPO groups, num_envs // group_size "
                f"({num_envs // group_size}): a group never spans processes"
            )
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.num_envs = int(num_envs)
        self.group_size = int(group_size)
        self.num_groups = self.num_envs // self.group_size
        self.processes = int(processes)
        self.render_mode = render_mode
        self.config = resolve_config(config, **kwargs)  # bad options fail here; an embedded server starts once
        self.curriculum: CurriculumRule | None = resolve_curriculum(curriculum)
        try:
            rule_state = None if self.curriculum is None else pickle.dumps(self.curriculum)
        except Exception as err:
            raise ConfigError(
                f"the curriculum must pickle to be read by worker processes: {type(err).__name__}: {err}"
            ) from err

        self.single_observation_space = ChatObservation()
        self.single_action_space = ChatAction()
        self.observation_space = spaces.Tuple([ChatObservation() for _ in range(self.num_envs)])
        self.action_space = spaces.Tuple([ChatAction() for _ in range(self.num_envs)])

        base, extra = divmod(self.num_groups, self.processes)
        bounds, start = [], 0
        for k in range(self.processes):
            end = start + (base + (k < extra)) * self.group_size
            bounds.append((start, end))
            start = end
        self.shards: list[tuple[int, int]] = bounds
        self._sent_rule_state = rule_state
        self._shard_stats: list[dict[str, Any]] = [{} for _ in bounds]
        self._ready = False

        context = multiprocessing.get_context("spawn")
        for k, (first, end) in enumerate(bounds):
            spec = {
                "num_envs": end - first,
                "group_size": self.group_size,
                "slot_offset": first,
                "config": self.config,
                "catalog": catalog,
                "curriculum": rule_state,
                "parent_pid": os.getpid(),
            }
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main, args=(child_end, spec), name=f"trustee-shard-{k}", daemon=True
            )
            try:
                process.start()
            finally:
                child_end.close()  # only the worker holds its end: its death reads as EOF here
            self._workers.append(_Worker(index=k, process=process, conn=parent_end))
        try:
            deadline = time.monotonic() + start_timeout
            for worker in self._workers:
                self._shard_stats[worker.index] = worker.receive(deadline)
        except BaseException:
            self.close_extras()
            raise

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (in slot order)."""
        return [int(worker.process.pid or 0) for worker in self._workers]

    @property
    def stats(self) -> dict[str, Any]:
        """The workers' stats merged: counts summed, ``usage`` merged per role, ``last_timings`` of the last shard."""
        return _merge_stats(self._shard_stats)

    # ------------------------------------------------------------------ Gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
        """Start a new episode in every slot, as :meth:`TrusteeVectorEnv.reset` (one seed seeds every group)."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(
                f"seed must be an int or None, got {type(seed).__name__}: one reset seed seeds every group's tasks"
            )
        options = dict(options or {})
        tasks = TrusteeVectorEnv._check_tasks(options.pop("tasks", None), single="task" in options)
        options = check_reset_options(options)
        if tasks is not None:
            options["tasks"] = tasks  # each shard plays tasks[global block % len(tasks)]
        VectorEnv.reset(self, seed=None if seed is None else int(seed))
        reset_seed = int(seed) if seed is not None else int(self.np_random.integers(0, 2**31 - 1))
        self._ready = False
        rule_state = self._rule_state(force=True)
        payloads = [{"seed": reset_seed, "options": options, "curriculum": rule_state} for _ in self._workers]
        replies = self._exchange("reset", payloads)
        observations: list[dict[str, Any]] = []
        infos: list[dict[str, Any]] = []
        for obs, shard_infos, _observed in replies:
            observations.extend(obs)
            infos.extend(shard_infos)
        self._ready = True
        return tuple(observations), self._batch_infos(infos)

    def step(self, actions: Sequence[Any]) -> Results:
        """One policy message per slot; ``None`` resets a slot that ended on the last step, and holds a running one."""
        if not self._ready:
            raise EpisodeStateError("step() called before reset() (or after a failed step): call reset() first")
        if isinstance(actions, (str, dict)) or not hasattr(actions, "__len__"):
            raise TypeError(f"actions must be a sequence of {self.num_envs} assistant messages, got {actions!r:.80}")
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions (one per sub-env), got {len(actions)}")
        rule_state = self._rule_state()
        payloads = [{"actions": actions[first:end], "curriculum": rule_state} for first, end in self.shards]
        try:
            replies = self._exchange("step", payloads)
        except BaseException:
            self._ready = False  # some shards moved on, others did not: only a full reset is safe
            raise
        observations: list[dict[str, Any]] = []
        infos: list[dict[str, Any]] = []
        observed: dict[int, tuple[float, Any]] = {}
        for obs, shard_infos, shard_observed, *_ in replies:
            observations.extend(obs)
            infos.extend(shard_infos)
            observed.update({slot: (reward, aspects) for slot, reward, aspects in shard_observed})
        rewards = np.concatenate([reply[3] for reply in replies]).astype(np.float64)
        terminations = np.concatenate([reply[4] for reply in replies]).astype(np.bool_)
        truncations = np.concatenate([reply[5] for reply in replies]).astype(np.bool_)
        self._feed_curriculum(terminations | truncations, observed, infos)
        return tuple(observations), rewards, terminations, truncations, self._batch_infos(infos)

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
        """``reset`` from a coroutine (the pipe exchange runs in a thread; the workers do the work)."""
        return await asyncio.to_thread(lambda: self.reset(seed=seed, options=options))

    async def astep(self, actions: Sequence[Any]) -> Results:
        """``step`` from a coroutine."""
        return await asyncio.to_thread(self.step, actions)

    def render(self) -> tuple[str, ...] | None:
        """``ansi``: a tuple with each sub-episode's transcript; ``human``: print them."""
        texts: tuple[str, ...] = tuple(
            text for reply in self._exchange("render", [None] * self.processes) for text in reply
        )
        if self.render_mode == "human":
            for index, text in enumerate(texts):
                print(f"===== sub-env {index} =====\n{text}")
            return None
        return texts

    def close_extras(self, **kwargs: Any) -> None:
        """Ask every worker to close its env and exit; end any that does not by its PID."""
        workers, self._workers = self._workers, []
        for worker in workers:
            try:
                worker.conn.send(("close", None))
            except (OSError, ValueError):  # already gone
                pass
        deadline = time.monotonic() + 10.0
        for worker in workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in workers:
            worker.stop()
        self._ready = False

    # ------------------------------------------------------------------ internals

    def _exchange(self, command: str, payloads: list[Any]) -> list[Any]:
        """Send every worker its payload, then collect every answer (all of them, so the pipes stay in step);
        raise the first failure in slot order."""
        if not self._workers:
            raise EpisodeStateError("this ShardedVectorEnv is closed")
        for worker, payload in zip(self._workers, payloads, strict=True):
            try:
                worker.conn.send((command, payload))
            except (OSError, ValueError) as err:
                self._ready = False
                raise WorkerError(f"worker {worker.index} (pid {worker.process.pid}) is gone: {err}") from err
        replies: list[Any] = []
        failure: BaseException | None = None
        for worker in self._workers:
            try:
                reply = worker.receive()
            except BaseException as err:  # keep collecting: the other workers' answers must be drained
                failure = failure or err
                continue
            if isinstance(reply, dict) and "stats" in reply:
                self._shard_stats[worker.index] = reply["stats"]
                reply = reply["result"]
            replies.append(reply)
        if failure is not None:
            raise failure
        return replies

    def _rule_state(self, *, force: bool = False) -> bytes | None:
        """The curriculum's pickled state when workers must (re)load it, else None."""
        if self.curriculum is None:
            return None
        state = pickle.dumps(self.curriculum)
        if not force and state == self._sent_rule_state:
            return None
        self._sent_rule_state = state
        return state

    def _feed_curriculum(
        self, ended: np.ndarray, observed: dict[int, tuple[float, Any]], infos: list[dict[str, Any]]
    ) -> None:
        """Tell the parent's rule about the episodes that ended, in slot order, as one process would."""
        if self.curriculum is None:
            return
        for slot in np.flatnonzero(ended):
            if int(slot) in observed:  # sim-faulted episodes are not observed
                self.curriculum.observe(*observed[int(slot)])
            if isinstance(self.curriculum, ReportsProgress):
                infos[slot]["curriculum"] = self.curriculum.snapshot()  # D and levels after this episode

    def _batch_infos(self, infos: list[dict[str, Any]]) -> dict[str, Any]:
        """The single-process env's batching, over all N slots (the same arrays, dtypes and masks)."""
        return TrusteeVectorEnv._batch_infos(self, infos)  # type: ignore[arg-type]  # uses num_envs and _add_info


# ---------------------------------------------------------------------- the parent's handle on a worker


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, *, index: int, process: Any, conn: Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn

    def receive(self, deadline: float | None = None) -> Any:
        """The worker's next answer; its error re-raised here; WorkerError if it dies (or misses ``deadline``)."""
        while not self.conn.poll(0.2):
            if not self.process.is_alive():
                if self.conn.poll(0):  # it answered, then exited
                    break
                raise WorkerError(
                    f"worker {self.index} (pid {self.process.pid}) exited with code {self.process.exitcode}"
                )
            if deadline is not None and time.monotonic() > deadline:
                raise WorkerError(f"worker {self.index} (pid {self.process.pid}) was not ready in time")
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError) as err:
            raise WorkerError(f"worker {self.index} (pid {self.process.pid}) closed its pipe") from err
        if status == "ok":
            return value
        raise _unpack_error(value, self.index, self.process.pid)

    def stop(self) -> None:
        """End the process by its PID if it is still running (SIGTERM, then SIGKILL), and reap it."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(3.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(3.0)
        self.conn.close()


# ---------------------------------------------------------------------- the worker process


class _CurriculumMirror:
    """The worker's view of the parent's rule: settings from a copy, episode results collected for the parent.

    Deliberately not :class:`~trustee_env.curriculum.ReportsProgress`: the parent fills ``info["curriculum"]``.
    """

    def __init__(self, rule: CurriculumRule) -> None:
        self.rule = rule
        self.slot = -1  # global slot of the episode being finished (set by the shard)
        self.observed: list[tuple[int, float, Any]] = []

    def task_settings(self, rng: np.random.Generator, pinned: Any = None) -> Any:
        """Settings from the copy of the parent's rule."""
        return self.rule.task_settings(rng, pinned=pinned)

    def observe(self, reward: float, aspects: Any) -> None:
        """Kept for the parent, which owns the rule."""
        self.observed.append((self.slot, float(reward), aspects))

    def drain(self) -> list[tuple[int, float, Any]]:
        """The episodes observed since the last drain."""
        observed, self.observed = self.observed, []
        return observed


class _Shard(TrusteeVectorEnv):
    """A worker's vector env: global slot numbers, and per-slot infos left for the parent to batch."""

    def __init__(self, num_envs: int, group_size: int, *, slot_offset: int, **kwargs: Any) -> None:
        self._slot_offset = slot_offset
        super().__init__(num_envs, group_size, **kwargs)

    def _batch_infos(self, infos: Any) -> Any:  # the parent batches over all N slots
        return list(infos)

    def _finish(self, index: int, out: Any) -> None:
        if isinstance(self.curriculum, _CurriculumMirror):
            self.curriculum.slot = self._slot_offset + index
        super()._finish(index, out)


def _worker_main(conn: Connection, spec: dict[str, Any]) -> None:
    """A worker: build the shard, then answer the parent's commands until told to close or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _exit_with_parent(int(spec["parent_pid"]))
    try:
        mirror = None if spec["curriculum"] is None else _CurriculumMirror(pickle.loads(spec["curriculum"]))
        env = _Shard(
            spec["num_envs"],
            spec["group_size"],
            slot_offset=spec["slot_offset"],
            config=spec["config"],
            catalog=spec["catalog"],
            curriculum=mirror,
        )
    except BaseException as err:
        _send(conn, ("error", _pack_error(err)))
        return
    _send(conn, ("ok", _shard_stats(env)))
    try:
        while True:
            try:
                command, payload = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                return
            if command == "close":
                return
            try:
                result = _handle(env, mirror, command, payload)
            except BaseException as err:
                if not _send(conn, ("error", _pack_error(err))):
                    return
                continue
            if not _send(conn, ("ok", {"result": result, "stats": _shard_stats(env)})):
                return
    finally:
        env.close()


def _handle(env: _Shard, mirror: _CurriculumMirror | None, command: str, payload: Any) -> Any:
    """Run one command on the shard."""
    if command == "render":
        return env.render()
    if mirror is not None and payload.get("curriculum") is not None:
        mirror.rule = pickle.loads(payload["curriculum"])
    if command == "reset":
        obs, infos = env.reset(seed=payload["seed"], options=payload["options"])
        return obs, infos, mirror.drain() if mirror else []
    if command == "step":
        obs, rewards, terminations, truncations, infos = env.step(payload["actions"])
        return obs, infos, mirror.drain() if mirror else [], rewards, terminations, truncations
    raise ValueError(f"unknown worker command {command!r}")


def _send(conn: Connection, message: Any) -> bool:
    """Send to the parent; False when it is gone."""
    try:
        conn.send(message)
    except (OSError, ValueError):
        return False
    return True


def _exit_with_parent(parent_pid: int) -> None:
    """Exit at once when the parent process dies, even in the middle of a step."""

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="trustee-shard-watchdog", daemon=True).start()


def _shard_stats(env: TrusteeVectorEnv) -> dict[str, Any]:
    """The shard's stats in plain, picklable values (``usage`` as per-role dicts)."""
    stats = dict(env.stats)
    stats["task_gate"] = env.roles.task_generator.gate_stats.as_dict()  # now, not as of the last finished episode
    usage = stats.get("usage")
    if isinstance(usage, Usage):
        stats["usage"] = usage.timing_view()
    return stats


def _merge_stats(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the shards' counters (nested dicts key by key), merge their usage, keep the last ``last_timings``."""
    merged: dict[str, Any] = {"episodes": 0, "sim_faults": 0, "groups": 0, "zero_variance_groups": 0}
    usage = Usage()
    for stats in shards:
        for key, value in stats.items():
            if key == "usage":
                usage.merge(Usage(roles={role: RoleUsage(**fields) for role, fields in value.items()}))
            elif key == "last_timings":
                merged[key] = value
            else:
                merged[key] = _add(merged.get(key), value)
    merged["usage"] = usage
    return merged


def _add(mine: Any, theirs: Any) -> Any:
    """Numbers add up, dicts add key by key, anything else: the later value."""
    if isinstance(theirs, bool) or not isinstance(theirs, (int, float, dict)):
        return theirs
    if isinstance(theirs, dict):
        out = dict(mine) if isinstance(mine, dict) else {}
        for key, value in theirs.items():
            out[key] = _add(out.get(key), value)
        return out
    return (mine if isinstance(mine, (int, float)) and not isinstance(mine, bool) else 0) + theirs


def _pack_error(err: BaseException) -> tuple[Any, ...]:
    """An exception as (class, args, attributes, traceback text); a placeholder if it cannot travel."""
    text = "".join(traceback.format_exception(err))
    packed = (type(err), err.args, dict(getattr(err, "__dict__", {})), text)
    try:
        pickle.dumps(packed)
    except Exception:
        packed = (WorkerError, (f"{type(err).__name__}: {err}",), {}, text)
    return packed


def _unpack_error(packed: tuple[Any, ...], index: int, pid: int | None) -> BaseException:
    """Rebuild a worker's exception as its own class (``__new__``: no constructor arguments needed)."""
    cls, args, attributes, text = packed
    try:
        err = cls.__new__(cls)
        err.args = args
        err.__dict__.update(attributes)
    except Exception:
        err = WorkerError(f"{getattr(cls, '__name__', cls)}: {args!r}")
    note = f"raised in Trustee worker {index} (pid {pid}):\n{text}"
    if hasattr(err, "add_note"):  # Python 3.11+
        err.add_note(note)
    return err
