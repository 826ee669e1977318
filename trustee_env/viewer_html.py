"""A self-contained HTML viewer of recorded trajectories (``trustee view run.jsonl --html out.html``).

One file, no server, no network: the page (``viewer_page.html`` beside this module: styles and script
inline) plus every episode as one JSON blob in a ``<script type="application/json">`` tag. The script
parses it once, lists episodes in a virtual list (only the rows on screen exist in the DOM) and renders
an episode's conversation, expected calls, world state, judge and usage only when it is opened.

Policy and simulator text is untrusted (small models write ``<script>``): the blob escapes ``<``, ``>``
and ``&`` as ``\\u003c``/``\\u003e``/``\\u0026`` so no ``</script>`` in the data can close its tag, the page
inserts text with ``textContent`` only, and a Content-Security-Policy allows no network and no script but
the page's own (by hash), so an injected handler could not run even if it reached the DOM.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonpatch

from trustee_env.trajectory import Trajectory

__all__ = ["build_payload", "escape_json_for_html", "page_parts", "write_html"]

DATA_MARKER = "@@TRUSTEE_DATA@@"
HASH_MARKER = "@@SCRIPT_HASH@@"
TITLE_MARKER = "@@TITLE@@"
_APP_OPEN = '<script id="trustee-app">'

_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def escape_json_for_html(text: str) -> str:
    """JSON text made safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` survive (same value)."""
    return text.translate(_HTML_ESCAPES)


@lru_cache(maxsize=1)
def page_parts() -> tuple[str, str]:
    """The page before and after the data blob, with the app script's CSP hash filled in."""
    page = resources.files("trustee_env").joinpath("viewer_page.html").read_text(encoding="utf-8")
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


def build_payload(records: Iterable[Trajectory], *, source: str = "") -> dict[str, Any]:
    """The viewer's data: episodes as JSON dicts, tool specs shared in one table, the world-state patch added.

    Tools repeat across episodes (a catalog is small), so each episode's ``task.tools`` holds indexes into
    ``tools``; ``transcript`` (the simulators' copy of the messages) is left out.
    """
    tools: list[dict[str, Any]] = []
    tool_index: dict[str, int] = {}
    episodes: list[dict[str, Any]] = []
    for record in records:
        data = record.model_dump(mode="json", exclude={"transcript"})
        task = data.get("task")
        if task:
            refs = []
            for tool in task.get("tools", []):
                key = json.dumps(tool, sort_keys=True)
                if key not in tool_index:
                    tool_index[key] = len(tools)
                    tools.append(tool)
                refs.append(tool_index[key])
            task["tools"] = refs
            data["world_patch"] = _world_patch(task.get("initial_state", {}), data.get("world_state", {}))
        else:
            data["world_patch"] = []
        episodes.append(data)
    return {"source": source, "tools": tools, "episodes": episodes}


def write_html(
    records: Iterable[Trajectory], out: str | os.PathLike[str], *, source: str = "", title: str | None = None
) -> Path:
    """Write the viewer page with every record embedded; returns the path written."""
    payload = build_payload(records, source=source)
    blob = escape_json_for_html(json.dumps(payload, ensure_ascii=False, separators=(",", ":")))
    head, tail = page_parts()
    head = head.replace(TITLE_MARKER, html.escape(title or f"Trustee trajectories: {source or 'run'}"))
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(head)
        handle.write(blob)
        handle.write(tail)
    return target
