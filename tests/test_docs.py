"""The documentation's examples run: every ```python block of docs/, and the scripted example.

Blocks run in page order in one namespace per page (a later block may use an earlier one's names), against the
scripted server when they need an endpoint: ``TRUSTEE_BASE_URL`` points at a ``FakeLLMServer``. A block that needs
a real model server or a GPU is marked on the line before its fence, with the reason, and is skipped:

    <!-- no-run: needs a GPU (vLLM serving Qwen3-8B) -->
    ```python
    ...
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trustee_env.testing import FakeLLMServer, ScriptedSimulator

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(?:<!--\s*no-run:\s*(?P<reason>.*?)\s*-->\s*\n)?```python\n(?P<code>.*?)```", re.DOTALL)


def python_blocks(path: Path) -> list[tuple[str, str | None]]:
    """(code, reason it must not run or None) for each ```python block of a page."""
    return [(m.group("code"), m.group("reason")) for m in BLOCK.finditer(path.read_text())]


def _pages_with_python() -> list[str]:
    pages = sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.relative_to(DOCS).parts)
    return [str(p.relative_to(ROOT)) for p in pages if python_blocks(p)]


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(ScriptedSimulator()) as server:
        yield server


@pytest.mark.parametrize("doc", _pages_with_python())
def test_doc_python_blocks_run(
    doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scripted_server: FakeLLMServer
) -> None:
    monkeypatch.chdir(tmp_path)  # examples may write files
    monkeypatch.setenv("TRUSTEE_BASE_URL", scripted_server.base_url)
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    skipped = []
    for index, (code, reason) in enumerate(python_blocks(ROOT / doc)):
        if reason is not None:
            assert reason.strip(), f"{doc}: block {index} is marked no-run without a reason"
            skipped.append(f"block {index}: {reason}")
            continue
        exec(compile(code, f"{doc} (python block {index})", "exec"), namespace)
    if skipped and len(skipped) == len(python_blocks(ROOT / doc)):
        pytest.skip(f"{doc}: every block needs more than the scripted server ({'; '.join(skipped)})")


def test_no_run_marker_is_recognised(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- no-run: needs a GPU -->\n```python\nraise SystemExit\n```\n\n```python\nx = 1\n```\n")
    assert python_blocks(page) == [("raise SystemExit\n", "needs a GPU"), ("x = 1\n", None)]


def test_async_example_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "async_episodes.py")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "32 episodes" in proc.stdout
