"""The docs site: it builds with ``mkdocs build --strict``, its generated pages are fresh and complete.

The generated blocks (configuration reference, CLI reference, error list, benchmarks, figures) come from
``docs/hooks/gen_docs.py``; when one of these tests says a page is stale, run ``python docs/hooks/gen_docs.py``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from script_modules import load_script

from trustee_env import cli, errors
from trustee_env.config import RoleOverride, TrusteeConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HAS_MKDOCS = importlib.util.find_spec("mkdocs") is not None and importlib.util.find_spec("material") is not None
needs_mkdocs = pytest.mark.skipif(not HAS_MKDOCS, reason='needs mkdocs and mkdocs-material: pip install -e ".[docs]"')


def _gen_docs() -> ModuleType:
    return load_script(DOCS / "hooks" / "gen_docs.py")


def _generated(page: str, name: str) -> str:
    text = (DOCS / page).read_text()
    match = re.search(rf"<!-- generated: {name} -->\n(.*?)<!-- end generated -->", text, flags=re.DOTALL)
    assert match, f"docs/{page} has no generated {name!r} block"
    return match.group(1)


def test_generated_pages_are_fresh() -> None:
    stale = _gen_docs().stale_pages()
    assert not stale, f"stale generated docs: {stale}; run `python docs/hooks/gen_docs.py` and commit them"


def test_configuration_reference_has_every_field() -> None:
    body = _generated("reference/configuration.md", "config")
    for name in TrusteeConfig.model_fields:
        assert re.search(rf"^\| `{name}` \|", body, flags=re.MULTILINE), f"TrusteeConfig.{name} is not documented"
        assert f"TRUSTEE_{name.upper()}" in body
    for name in RoleOverride.model_fields:
        assert re.search(rf"^\| `{name}` \|", body.split("### Per-role settings")[1], flags=re.MULTILINE), name


def test_a_field_without_a_description_fails_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = _gen_docs()
    field = TrusteeConfig.model_fields["difficulty"]
    monkeypatch.setattr(field, "description", None)
    with pytest.raises(ValueError, match="difficulty"):
        gen.config_reference()


def test_every_error_class_has_a_fix_and_is_documented() -> None:
    body = _generated("troubleshooting.md", "errors")
    classes = _gen_docs().error_classes()
    exported = {getattr(errors, name) for name in errors.__all__}
    assert set(classes) == exported, "errors.__all__ and the classes defined in errors.py differ"
    for cls in classes:
        assert cls in cli.FIXES, f"trustee_env.cli.FIXES has no fix for {cls.__name__}"
        assert f"### {cls.__name__}\n" in body, f"{cls.__name__} is missing from docs/troubleshooting.md"
        assert cli.FIXES[cls] in body


def test_cli_reference_lists_every_command_and_option() -> None:
    body = _generated("cli.md", "cli")
    parser = cli.build_parser()
    gen = _gen_docs()
    for name, _, sub in gen._subcommands(parser):
        assert f"## trustee {name}\n" in body, f"`trustee {name}` is missing from docs/cli.md"
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in body, f"`trustee {name} {option}` is missing from docs/cli.md"


def test_navigation_lists_every_page() -> None:
    nav = _gen_docs().navigation()
    listed = [page for section in nav for pages in section.values() for page in pages]
    present = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "hooks" not in p.parts)
    assert sorted(listed) == present
    assert listed[0] == "index.md"


def test_readme_quick_start_is_two_commands_and_matches_the_site() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quick, flags=re.DOTALL)
    assert len(commands) == 2 and all(len(c.strip().splitlines()) == 1 for c in commands), commands
    index = (DOCS / "index.md").read_text()
    for command in commands:
        assert f"```bash\n{command}```" in index, f"docs/index.md lacks the README's `{command.strip()}`"


def _build(config_dir: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=config_dir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


@needs_mkdocs
def test_site_builds_strict(tmp_path: Path) -> None:
    started = time.perf_counter()
    proc = _build(ROOT, tmp_path / "site")
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"mkdocs build --strict: {seconds:.1f} s")
    for page in DOCS.rglob("*.md"):
        if "hooks" in page.parts:
            continue
        rel = page.relative_to(DOCS).with_suffix("")
        html = tmp_path / "site" / ("index.html" if rel.name == "index" else f"{rel.as_posix()}/index.html")
        assert html.exists(), f"{page} was not built"
    cli_html = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "trustee rollout" in cli_html and "--policy-base-url" in cli_html
    assert not (tmp_path / "site" / "hooks").exists(), "the hook script must not be published"


@needs_mkdocs
def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    (tmp_path / "docs" / "hooks").mkdir(parents=True)
    shutil.copy(DOCS / "hooks" / "gen_docs.py", tmp_path / "docs" / "hooks" / "gen_docs.py")
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [the missing page](missing.md).\n")
    proc = _build(tmp_path, tmp_path / "site")
    assert proc.returncode != 0
    assert "missing.md" in proc.stdout + proc.stderr
