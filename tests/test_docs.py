"""The documentation's examples run: the self-contained ```python blocks and the scripted example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Blocks that need no model: they use the scripted server or only build configuration.
RUNNABLE_DOCS = ["docs/episode.md", "docs/configuration.md", "docs/curriculum.md", "docs/rewards.md"]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("doc", RUNNABLE_DOCS)
def test_doc_python_blocks_run(doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples may write files
    blocks = _python_blocks(ROOT / doc)
    assert blocks, f"{doc} has no python example"
    for block in blocks:
        exec(compile(block, doc, "exec"), {"__name__": "__doc_example__"})


def test_async_example_runs() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "async_episodes.py")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "32 episodes" in proc.stdout
