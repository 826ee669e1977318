"""The wheel ships its prompts and catalog; every template renders from an installed wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels = list(out.glob("trustee_env-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_contains_prompts_and_catalog(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    repo_prompts = sorted(p.name for p in (ROOT / "prompts").glob("*.j2"))
    assert repo_prompts, "the repository has no prompts"
    for name in repo_prompts:
        assert f"trustee_env/prompts/{name}" in names
    catalog = [n for n in names if n.startswith("trustee_env/data/catalog/") and n.endswith(".json")]
    assert len(catalog) >= 20


def test_installed_wheel_imports_and_renders_every_template(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    script = textwrap.dedent(
        """
        import sys, trustee_env
        from trustee_env import prompts
        from trustee_env.catalog import Catalog
        assert trustee_env.__file__.startswith(sys.argv[1]), trustee_env.__file__
        dirs = prompts.prompt_dirs()
        assert dirs and str(dirs[0]).startswith(sys.argv[1]), dirs
        names = prompts.template_names()
        assert "judge.j2" in names and "task_generator.j2" in names, names
        for name in names:  # every template parses, and comes from the wheel
            template = prompts._environment().get_template(name)
            assert template.filename.startswith(sys.argv[1]), template.filename
        text = prompts.render("repair.j2", errors=["x: bad"])
        assert "x: bad" in text
        print(len(names), len(Catalog.default()))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run(
        [sys.executable, "-c", script, str(target)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    templates, tools = map(int, run.stdout.split())
    assert templates >= 9 and tools >= 200
