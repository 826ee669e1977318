"""The public API a newcomer can discover: every exported and every documented name exists."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

import trustee_env

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md")), *sorted((ROOT / "examples").glob("*.py"))]
IMPORT = re.compile(r"from (trustee_env(?:\.\w+)*) import (?:\(([\w,\s]+)\)|([\w, ]+))")


def test_every_exported_name_resolves_and_is_listed_by_dir() -> None:
    for name in trustee_env.__all__:
        assert getattr(trustee_env, name) is not None, name
    assert set(trustee_env.__all__) <= set(dir(trustee_env))


def _documented_imports() -> list[tuple[str, str, str]]:
    found = []
    for path in DOCUMENTS:
        for module, grouped, inline in IMPORT.findall(path.read_text(encoding="utf-8")):
            for name in re.split(r"[,\s]+", grouped or inline):
                if name and name != "as" and name.isidentifier():
                    found.append((path.relative_to(ROOT).as_posix(), module, name))
    return found


@pytest.mark.parametrize(("document", "module", "name"), _documented_imports())
def test_every_documented_import_exists(document: str, module: str, name: str) -> None:
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] == "trustee_env":
            raise
        # An adapter whose trainer (an optional extra: trl, verl, skyrl) is not installed here: the name must
        # still be defined at the top level of the module's source.
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, f"{document} imports from {module}: no such module"
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        defined = {
            target.id if isinstance(target, ast.Name) else getattr(target, "name", None)
            for node in tree.body
            for target in (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else [node]
            )
        }
        assert name in defined, f"{document} imports {name} from {module}: missing ({err.name} not installed)"
        return
    assert hasattr(loaded, name), f"{document} imports {name} from {module}: missing"


def test_documented_imports_were_found() -> None:
    assert len(_documented_imports()) > 10


def test_the_spec_sheet_is_on_the_class() -> None:
    doc = trustee_env.TrusteeToolEnv.__doc__ or ""
    for section in (
        "## Action Space",
        "## Observation Space",
        "## Rewards",
        "## Episode End",
        "## Info",
        "## Arguments",
    ):
        assert section in doc, section


def test_bad_render_mode_and_reset_option_are_config_errors(fake_server) -> None:
    server = fake_server()
    with pytest.raises(trustee_env.ConfigError, match="render_mode"):
        trustee_env.TrusteeToolEnv(render_mode="rgb_array", base_url=server.base_url)
    env = trustee_env.TrusteeToolEnv(base_url=server.base_url)
    with pytest.raises(trustee_env.ConfigError, match="unknown reset option"):
        env.reset(seed=0, options={"dificulty": 3})
    env.close()


def test_main_options_are_explicit_keywords(fake_server) -> None:
    import inspect

    parameters = inspect.signature(trustee_env.TrusteeToolEnv).parameters
    for name in ("base_url", "model", "difficulty", "tool_format", "reward_mode", "trajectory_path", "curriculum"):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    env = trustee_env.TrusteeToolEnv(base_url=fake_server().base_url, difficulty=42, tool_format="hermes")
    assert (env.config.difficulty, env.config.tool_format) == (42, "hermes")
    env.close()
