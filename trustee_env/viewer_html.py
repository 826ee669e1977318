"""A self-contained HTML viewer of recorded trajectories (``trustee view run.jsonl --html out.html``).

One file, no server, no network: the page (``viewer_page.html`` beside this module: styles and script
inline) plus every episode in one ``<script type="application/octet-stream">`` data block of
comma-separated base64 gzip members: first the shared tool table and a small summary per episode (what the
list, filters and sorts need), then the episodes in full, 250 to a member, as JSON lines. The page inflates
the summaries with the browser's own ``DecompressionStream`` and draws a virtual list (only the rows on
screen exist in the DOM); a member is inflated and an episode parsed only when it is opened or a search
needs it. So a 10,000-episode run opens in well under two seconds (0.35 s measured, see docs/viewer.md),
and the file is ~18x smaller than the JSONL of real records.

Policy and simulator text is untrusted (small models write ``<script>``). Base64 has no ``<``, so nothing
in the data can close its ``<script>`` tag; the page inserts text with ``textContent`` only; and a
Content-Security-Policy allows no network and no script but the page's own (by hash), so an injected
handler could not run even if it reached the DOM.

``write_audit_html`` writes a ``trustee audit`` report (or two, side by side) the same way, on a page of its
own (``viewer_audit_page.html``): the report embedded whole, every figure shown drawn from it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import os
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

import jsonpatch

from trustee_env.trajectory import Trajectory

__all__ = [
    "audit_payload",
    "build_payload",
    "decode_payload",
    "encode_payload",
    "page_data",
    "page_parts",
    "read_audit_payload",
    "write_audit_html",
    "write_html",
]

DATA_MARKER = "@@TRUSTEE_DATA@@"
HASH_MARKER = "@@SCRIPT_HASH@@"
TITLE_MARKER = "@@TITLE@@"
COMMON_MARKER = "  // @@VIEWER_COMMON@@\n"
_APP_OPEN = '<script id="trustee-app">'
_DATA_OPEN = '<script id="trustee-data" type="application/octet-stream">'


@lru_cache(maxsize=2)
def page_parts(name: str = "viewer_page.html") -> tuple[str, str]:
    """A page (beside this module) before and after its data blob, with the app script's CSP hash filled in.

    The script helpers both pages share (``viewer_common.js``) go in at the page's ``COMMON_MARKER``
    first, so the hash covers the script as the browser runs it.
    """
    package = resources.files("trustee_env")
    page = package.joinpath(name).read_text(encoding="utf-8")
    page = page.replace(COMMON_MARKER, package.joinpath("viewer_common.js").read_text(encoding="utf-8"), 1)
    start = page.index(_APP_OPEN) + len(_APP_OPEN)
    script = page[start : page.index("</script>", start)]
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    page = page.replace(HASH_MARKER, f"sha256-{digest}")
    head, tail = page.split(DATA_MARKER)
    return head, tail


def _world_patch(before: Any, after: Any) -> list[dict[str, Any]]:
    """RFC 6902 operations from the task's initial state to the final one (what the tools changed)."""
    if not isinstance(before, dict | list) or not isinstance(after, dict | list):
        return [] if before == after else [{"op": "replace", "path": "", "value": after}]
    return list(jsonpatch.make_patch(before, after))


def _summary(data: dict[str, Any], tool_categories: list[str]) -> dict[str, Any]:
    """What the episode list, its filters and sorts need, without parsing the whole episode."""
    task = data.get("task") or {}
    fault = data.get("sim_fault")
    difficulty = data.get("difficulty")
    return {
        "reward": data.get("reward", 0.0),
        "difficulty": difficulty if difficulty is not None else task.get("difficulty"),
        "termination": data.get("termination"),
        "fault": fault.get("role") if fault else None,
        "categories": sorted({tool_categories[i] for i in task.get("tools", [])}),
        "intent": str(task.get("intent", "(no task)"))[:200],
        "messages": len(data.get("messages", [])),
        "wall_s": (data.get("timings") or {}).get("wall_s", 0.0),
    }


def build_payload(records: Iterable[Trajectory], *, source: str = "") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The viewer's data: (shared part, episodes). Episodes are JSON dicts with the world-state patch added.

    Tools repeat across episodes (a catalog is small), so each episode's ``task.tools`` holds indexes into
    the shared ``tools`` table; ``transcript`` (the simulators' copy of the messages) is left out.
    """
    tools: list[dict[str, Any]] = []
    by_name: dict[str, list[int]] = {}  # tool name -> indexes of the distinct specs with that name
    episodes: list[dict[str, Any]] = []

    def index_of(tool: dict[str, Any]) -> int:
        same_name = by_name.setdefault(str(tool.get("name")), [])
        for index in same_name:  # dict equality, not a serialisation per tool per episode
            if tools[index] == tool:
                return index
        same_name.append(len(tools))
        tools.append(tool)
        return len(tools) - 1

    for record in records:
        data = record.model_dump(mode="json", exclude={"transcript"})
        task = data.get("task")
        if task:
            task["tools"] = [index_of(tool) for tool in task.get("tools", [])]
            data["world_patch"] = _world_patch(task.get("initial_state", {}), data.get("world_state", {}))
        else:
            data["world_patch"] = []
        episodes.append(data)
    categories = [str(tool.get("category", "general")) for tool in tools]
    shared = {"source": source, "tools": tools, "summaries": [_summary(ep, categories) for ep in episodes]}
    return shared, episodes


CHUNK_SIZE = 250
"""Episodes per compressed chunk: opening one episode inflates ~1 MB, not the whole run."""


def _pack(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)).decode("ascii")


def _unpack(block: str) -> str:
    return gzip.decompress(base64.b64decode(block)).decode("utf-8")


def encode_payload(shared: dict[str, Any], episodes: list[dict[str, Any]], *, chunk_size: int = CHUNK_SIZE) -> str:
    """The data block's text: comma-separated base64 of gzip, the shared part first, then chunks of episodes.

    A chunk holds ``chunk_size`` episodes as JSON lines (``json.dumps`` escapes newlines inside strings, so a
    line is one episode). Base64 and commas have no ``<``, so no ``</script>`` in the data can end the block.
    """
    shared = {**shared, "chunk_size": chunk_size}
    blocks = [_pack(json.dumps(shared, ensure_ascii=False, separators=(",", ":")))]
    for start in range(0, len(episodes), chunk_size):
        chunk = episodes[start : start + chunk_size]
        blocks.append(_pack("\n".join(json.dumps(ep, ensure_ascii=False, separators=(",", ":")) for ep in chunk)))
    return ",".join(blocks)


def decode_payload(block: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The inverse of :func:`encode_payload` (for tests and tools that read a written page)."""
    first, *chunks = block.split(",")
    shared = json.loads(_unpack(first))
    shared.pop("chunk_size", None)
    return shared, [json.loads(line) for chunk in chunks for line in _unpack(chunk).split("\n")]


def write_html(
    records: Iterable[Trajectory],
    out: str | os.PathLike[str],
    *,
    source: str = "",
    title: str | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> Path:
    """Write the viewer page with every record embedded; returns the path written."""
    block = encode_payload(*build_payload(records, source=source), chunk_size=chunk_size)
    return _write_page("viewer_page.html", title or f"Trustee trajectories: {source or 'run'}", block, out)


def _write_page(name: str, title: str, block: str, out: str | os.PathLike[str]) -> Path:
    """Page ``name`` with its title and data block filled in, written to ``out``."""
    head, tail = page_parts(name)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(head.replace(TITLE_MARKER, html.escape(title)))
        handle.write(block)
        handle.write(tail)
    return target


def page_data(page: str | os.PathLike[str]) -> str:
    """The data block a written page embeds, as written (for tests and tools that read a page)."""
    text = Path(page).read_text(encoding="utf-8")
    return text.split(_DATA_OPEN, 1)[1].split("</script>", 1)[0]


# ---- audit reports ---------------------------------------------------------------------------------------

AUDIT_PAGE = "viewer_audit_page.html"


def audit_payload(reports: list[Any], labels: list[str] | None = None) -> dict[str, Any]:
    """The audit page's data: one report, or two to compare (``AuditReport`` objects or their JSON dicts).

    Reports are embedded whole, as ``trustee audit`` wrote them: the page computes nothing the report does
    not hold, so what it shows can be checked against the JSON file.
    """
    if not 1 <= len(reports) <= 2:
        raise ValueError(f"the audit page shows one report or compares two, not {len(reports)}")
    dumped = [r.model_dump(mode="json") if hasattr(r, "model_dump") else dict(r) for r in reports]
    if labels is None:
        labels = ["A", "B"][: len(dumped)]
    if len(labels) != len(dumped):
        raise ValueError("one label per report")
    return {"reports": dumped, "labels": list(labels)}


def write_audit_html(
    reports: list[Any], out: str | os.PathLike[str], *, labels: list[str] | None = None, title: str | None = None
) -> Path:
    """Write the self-contained audit page (one report, or two side by side); returns the path written.

    Same guarantees as the trajectory page: one file, no network, the data as base64 gzip (no ``<`` can
    end its block), text inserted with ``textContent`` only, a CSP that runs nothing but the page's script.
    """
    payload = audit_payload(reports, labels)
    block = _pack(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
    if title is None:
        models = [", ".join(sorted({str(e.get("model")) for e in r["endpoints"].values()})) for r in payload["reports"]]
        title = "Trustee audit: " + " vs ".join(models)
    return _write_page(AUDIT_PAGE, title, block, out)


def read_audit_payload(page: str | os.PathLike[str]) -> dict[str, Any]:
    """The data a written audit page embeds (for tests and tools)."""
    return cast(dict[str, Any], json.loads(_unpack(page_data(page))))
