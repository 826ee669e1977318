"""The one jinja2 environment that renders every prompt.

Templates live in the repository's top-level ``prompts/`` folder, which the wheel ships as
``trustee_env/prompts``. Loading tries the package folder first (wheel install) and falls
back to the repository folder beside the package (editable install).

A role template defines two top-level blocks with ``{% set system %}`` and
``{% set user %}``: static instructions go in ``system`` (so server-side prefix caching
pays off) and episode data in ``user``. Text written by the policy only enters a prompt
through the ``fence`` filter, which quotes it as data.

Templates render in jinja2's immutable sandbox: a template (a user's ``prompt_dir`` too) can read the
values it is given but not reach Python internals (``__class__``, ``__subclasses__``, ...) or mutate
them; that raises :class:`~trustee_env.errors.TemplateError`. Values are never rendered as templates,
so ``{{ }}`` or ``{% %}`` in policy text stays text.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from trustee_env.errors import TemplateError

__all__ = ["fence", "prompt_dirs", "render", "render_messages", "template_names"]

FENCE_OPEN = "<<<"
FENCE_CLOSE = ">>>"


_DELIMITER_RUN = re.compile(r"<{3,}|>{3,}")
# Chat-template control tokens (ChatML/Qwen/Llama 3 ``<|...|>``, Gemma turns, Llama 2/Mistral ``[INST]``, ``<s>``).
# Servers tokenize special tokens written in message text as the real thing (llama.cpp parses them in prompts):
# left intact, policy text could open a new system turn in the simulator's prompt, below any fence.
_CONTROL_TOKEN = re.compile(r"<\||\|>|<(?=/?(?:s|start_of_turn|end_of_turn)>)|\[(?=/?INST\])")


def break_control_tokens(text: str) -> str:
    """``text`` with chat-template control tokens broken up (``<|eot_id|>`` -> ``< |eot_id| >``)."""
    return _CONTROL_TOKEN.sub(
        lambda match: " ".join(match.group()) if len(match.group()) == 2 else match.group() + " ", text
    )


def fence(text: Any) -> str:
    """Quote untrusted text as data: wrap it in ``<<< >>>`` so that nothing inside can end the fence.

    Every run of three or more ``<`` or ``>`` is spaced out (``>>>>>`` -> ``> > > > >``: replacing
    ``>>>`` once would leave ``> > >>>``), and a leading ``<`` or trailing ``>`` is kept apart from
    the delimiters, so the first ``>>>`` after ``<<<`` is always the fence's own. Chat-template control
    tokens are broken up (``<|im_start|>`` -> ``< |im_start| >``), so a server cannot read them as
    turn boundaries either.
    """
    body = break_control_tokens(str(text if text is not None else ""))
    body = _DELIMITER_RUN.sub(lambda match: " ".join(match.group()), body)
    if body.startswith("<"):
        body = " " + body
    if body.endswith(">"):
        body += " "
    return f"{FENCE_OPEN}{body}{FENCE_CLOSE}"


def _to_json(value: Any, indent: int | None = None) -> str:
    """The ``json`` filter: data in prompts (world state, facts, schemas) may hold policy-written values the
    tool simulator copied (an argument saved into a record), so control tokens are broken up here too."""
    return break_control_tokens(json.dumps(value, ensure_ascii=False, sort_keys=True, indent=indent, default=str))


def prompt_dirs() -> list[Path]:
    """Folders searched for templates, in order: the installed package's, then the repository's."""
    dirs: list[Path] = []
    packaged = resources.files("trustee_env") / "prompts"
    if packaged.is_dir():
        dirs.append(Path(str(packaged)))
    repo = Path(__file__).resolve().parent.parent / "prompts"
    if repo.is_dir() and repo not in dirs:
        dirs.append(repo)
    return dirs


@functools.lru_cache(maxsize=8)
def _environment(extra_dir: str | None = None) -> jinja2.Environment:
    search = ([extra_dir] if extra_dir else []) + [str(path) for path in prompt_dirs()]
    if not search:
        raise TemplateError(
            "no prompts folder found: the package is missing trustee_env/prompts; reinstall trustee-env"
        )
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates are read once: no stat() of the file on every render
    )
    env.filters["fence"] = fence
    env.filters["json"] = _to_json
    return env


def template_names() -> list[str]:
    """Every template that can be rendered."""
    return sorted(name for name in _environment().list_templates() if name.endswith(".j2"))


def _template(name: str, prompt_dir: str | None) -> jinja2.Template:
    try:
        return _environment(prompt_dir).get_template(name)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"prompt template {name!r} not found; available: {', '.join(template_names())}") from None
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"prompt template {name!r} line {err.lineno}: {err.message}") from None


def render(name: str, prompt_dir: str | None = None, **context: Any) -> str:
    """Render a whole template to text."""
    try:
        return _template(name, prompt_dir).render(**context)
    except jinja2.UndefinedError as err:
        raise TemplateError(f"prompt template {name!r}: {err.message}") from None
    except jinja2.sandbox.SecurityError as err:
        raise TemplateError(f"prompt template {name!r} is unsafe: {err}") from None


def render_parts(name: str, prompt_dir: str | None = None, **context: Any) -> dict[str, str]:
    """The ``{% set %}`` blocks of a template, rendered and stripped (for templates that hold several texts)."""
    try:
        module = _template(name, prompt_dir).make_module(context)
    except jinja2.UndefinedError as err:
        raise TemplateError(f"prompt template {name!r}: {err.message}") from None
    except jinja2.sandbox.SecurityError as err:
        raise TemplateError(f"prompt template {name!r} is unsafe: {err}") from None
    return {key: " ".join(str(value).split()) for key, value in vars(module).items() if not key.startswith("_")}


def render_messages(name: str, prompt_dir: str | None = None, **context: Any) -> list[dict[str, str]]:
    """Render a role template into ``[system, user]`` chat messages."""
    try:
        module = _template(name, prompt_dir).make_module(context)
    except jinja2.UndefinedError as err:
        raise TemplateError(f"prompt template {name!r}: {err.message}") from None
    except jinja2.sandbox.SecurityError as err:
        raise TemplateError(f"prompt template {name!r} is unsafe: {err}") from None
    system = str(getattr(module, "system", "")).strip()
    user = str(getattr(module, "user", "")).strip()
    if not system or not user:
        raise TemplateError(f"prompt template {name!r} must set both `system` and `user` blocks")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
