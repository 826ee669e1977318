"""The generated parts of the docs, and the site's navigation.

Generated text sits in the Markdown between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``:

* ``config``: the configuration reference, from the pydantic models in ``trustee_env/config.py``;
* ``cli``: the command-line reference, from ``trustee_env.cli.build_parser()``;
* ``errors``: every exception class of ``trustee_env/errors.py``, with the line the CLI prints and its fix;
* ``benchmarks``: the scripts under ``benchmarks/`` (as ``trustee bench`` lists them);
* ``figures``: the measured results under ``benchmarks/results/``.

Used two ways:

* as a MkDocs hook (``hooks:`` in ``mkdocs.yml``): every generated block is refreshed from the code while the
  site is built, so the site is never stale, and the navigation lists every page (known pages in reading order,
  any other page after them: a new page never breaks ``mkdocs build --strict``);
* as a script: ``python docs/hooks/gen_docs.py`` rewrites the blocks in the Markdown files (which are committed,
  so they read well on GitHub too); ``--check`` only reports stale files and exits 1 (the test suite runs it).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
if str(ROOT) not in sys.path:  # run as a script from a source tree without an install
    sys.path.insert(0, str(ROOT))

BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z_-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.DOTALL)

# Reading order of the navigation. Pages that do not exist are left out; pages not named here are added
# after the section of their folder (or under "More"), so other pages never need an edit of this list.
NAV: list[tuple[str, list[str]]] = [
    ("Getting started", ["index.md", "concepts.md"]),
    ("Guides", ["episode.md", "rewards.md", "curriculum.md", "vector.md", "configuration.md", "serving.md",
                "vllm.md", "training.md", "trainers/", "viewer.md", "audit.md", "reliability.md", "fault-matrix.md"]),
    ("Reference", ["cli.md", "reference/configuration.md", "troubleshooting.md", "figures.md"]),
]  # fmt: skip


# ------------------------------------------------------------------------------------------- helpers


def _cell(text: Any) -> str:
    """Table-cell text: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(repr(value) for value in typing.get_args(annotation))
    text = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    return text.replace("typing.", "").replace("NoneType", "None").replace("|", "\\|")


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        value = field.default_factory()
        return "`{}`" if hasattr(value, "model_dump") and not value.model_dump(exclude_none=True) else f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{field.default!r}`"


def _bounds(field: Any) -> str:
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    parts = []
    for item in field.metadata:
        for key, sign in signs.items():
            value = getattr(item, key, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return f" ({', '.join(parts)})" if parts else ""


# ------------------------------------------------------------------------------------------- config


def config_reference() -> str:
    """Tables of every setting of ``TrusteeConfig``, the per-role fields and the role defaults.

    Raises:
        ValueError: a field has no description (in its own model or the endpoint model): document it in config.py.
    """
    from trustee_env.config import ROLE_DEFAULTS, EndpointConfig, RoleOverride, TrusteeConfig
    from trustee_env.schemas import Role

    roles = {role.value for role in Role}
    missing: list[str] = []

    def describe(name: str, field: Any) -> str:
        if name in roles:
            return f"Overrides for the `{name}` role: any field of the per-role table below, as a dict."
        description = field.description or getattr(EndpointConfig.model_fields.get(name), "description", None)
        if not description:
            missing.append(name)
            return ""
        return _cell(description)

    lines = [
        "| option | type | default | environment variable | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in TrusteeConfig.model_fields.items():
        env = f"`TRUSTEE_{name.upper()}_<FIELD>`" if name in roles else f"`TRUSTEE_{name.upper()}`"
        lines.append(
            f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {env} | "
            f"{describe(name, field)}{_bounds(field)} |"
        )
    lines += [
        "",
        "### Per-role settings",
        "",
        "Each role (" + ", ".join(f"`{role}`" for role in sorted(roles)) + ") takes these fields, as a dict keyword "
        '(`judge={"temperature": 0}`) or as `TRUSTEE_<ROLE>_<FIELD>` (`TRUSTEE_JUDGE_TEMPERATURE=0`). '
        "An unset field falls back to the role's default below, then to the env-wide option of the same name, "
        "then to the endpoint default.",
        "",
        "| field | type | endpoint default | meaning |",
        "|---|---|---|---|",
    ]
    for name in RoleOverride.model_fields:
        endpoint = EndpointConfig.model_fields.get(name)
        if endpoint is None:
            missing.append(f"RoleOverride.{name} (not an EndpointConfig field)")
            continue
        lines.append(
            f"| `{name}` | {_type_name(endpoint.annotation)} | {_default(endpoint)} | "
            f"{describe(name, endpoint)}{_bounds(endpoint)} |"
        )
    lines += ["", "### Role defaults", "", "| role | defaults |", "|---|---|"]
    for role, values in ROLE_DEFAULTS.items():
        shown = ", ".join(f"`{key}={value!r}`" for key, value in values.items()) or "-"
        lines.append(f"| `{Role(role).value}` | {shown} |")
    if missing:
        raise ValueError(f"config fields without a description: {', '.join(missing)} (add one in config.py)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- cli


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            name = ", ".join(action.option_strings)
            if action.nargs != 0:
                name += f" {action.metavar or action.dest.upper()}"
        else:
            name = action.metavar or action.dest
            if action.nargs == argparse.REMAINDER:
                name += " ..."
            elif action.nargs == "?":
                name = f"[{name}]"
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS, []) else f"`{default}`"
        help_text = action.help or ""
        if action.choices and not isinstance(action.choices, dict):
            help_text += (" " if help_text else "") + "(one of: " + ", ".join(f"`{c}`" for c in action.choices) + ")"
        rows.append(f"| `{_cell(name)}` | {shown} | {_cell(help_text)} |")
    return rows


def cli_reference() -> str:
    """Every ``trustee`` command and its arguments, from the argparse parser."""
    from trustee_env.cli import build_parser

    parser = build_parser()
    lines = [_cell(parser.description or ""), "", "| command | what it does |", "|---|---|"]
    commands = _subcommands(parser)
    for name, help_text, _ in commands:
        lines.append(f"| [`trustee {name}`](#trustee-{name}) | {_cell(help_text)} |")
    lines += ["", "Global options: " + "; ".join(r.split("|")[1].strip() for r in _argument_rows(parser)) + "."]

    def section(prefix: str, name: str, help_text: str, sub: argparse.ArgumentParser, level: int) -> None:
        lines.extend(["", f"{'#' * level} {prefix} {name}", ""])
        text = sub.description or help_text
        if text:
            lines.extend([_cell(text), ""])
        rows = _argument_rows(sub)
        if rows:
            lines.extend(["| argument | default | meaning |", "|---|---|---|", *rows])
        for child, child_help, child_parser in _subcommands(sub):
            section(f"{prefix} {name}", child, child_help, child_parser, level + 1)

    for name, help_text, sub in commands:
        section("trustee", name, help_text, sub, 2)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- errors


def error_classes() -> list[type[BaseException]]:
    """The exception classes of ``trustee_env.errors``, in definition (tree) order."""
    from trustee_env import errors

    return [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, errors.TrusteeError) and obj.__module__ == errors.__name__
    ]


def errors_reference() -> str:
    """One section per error class: what it means, the line the CLI prints, and what to run."""
    from trustee_env.cli import FIXES
    from trustee_env.errors import ConfigError

    lines: list[str] = []
    for cls in error_classes():
        bases = ", ".join(base.__name__ for base in cls.__bases__)
        doc = inspect.cleandoc(cls.__doc__ or "")
        summary, _, details = doc.partition("\n\n")
        kind = "configuration error" if issubclass(cls, ConfigError) else "error"
        fix = next(FIXES[base] for base in cls.__mro__ if base in FIXES)
        lines += [
            f"### {cls.__name__}",
            "",
            f"*Subclass of {bases}.* {' '.join(summary.split())}",
            "",
            "Printed as:",
            "",
            "```text",
            f"trustee: {kind}: <what failed> -> {fix}",
            "```",
            "",
        ]
        if details.strip():
            lines += [_google_sections(details.strip()), ""]
    lines += ["### Messages of the `trustee` command", "", "| message | what to run |", "|---|---|"]
    lines += [f"| `{_cell(message)}` | {_cell(fix)} |" for message, fix in command_messages()]
    return "\n".join(lines).rstrip()


def _google_sections(text: str) -> str:
    """A docstring's ``Attributes:`` / ``Args:`` block as a Markdown list (indented text would be code)."""
    out: list[str] = []
    for line in text.splitlines():
        item = re.match(r"^\s{4}(\w+): (.*)$", line)
        if item:
            out.append(f"* `{item.group(1)}`: {item.group(2)}")
        elif line.startswith("        ") and out and out[-1].startswith("* "):
            out[-1] += " " + line.strip()
        elif re.match(r"^(Attributes|Args):$", line):
            out += [f"*{line}*", ""]
        else:
            out.append(line)
    return "\n".join(out)


def _literal(node: Any) -> str:
    """Source text of a str or f-string argument, placeholders as ``<expression>``."""
    import ast

    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(part.value) if isinstance(part, ast.Constant) else f"<{ast.unparse(part.value)}>"
            for part in node.values
        )
    text = ast.unparse(node)
    return "<the underlying error>" if text == "str(err)" else f"<{text}>"


def command_messages() -> list[tuple[str, str]]:
    """(message, fix) of every ``CommandError`` the ``trustee`` command raises, read from ``cli.py``'s source."""
    import ast

    import trustee_env.cli

    tree = ast.parse(Path(trustee_env.cli.__file__).read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CommandError" and node.args:
            fix = next((_literal(k.value) for k in node.keywords if k.arg == "fix"), "")
            found.append((_literal(node.args[0]), fix))
    return sorted(found)


# ------------------------------------------------------------------------------------------- benchmarks


def benchmarks_reference() -> str:
    """The benchmark scripts: name, file, what it measures and how to run it."""
    import ast

    from trustee_env.cli import benchmark_scripts

    lines = ["| `trustee bench` name | script | measures |", "|---|---|---|"]
    usages = []
    for name, (script, summary) in benchmark_scripts(ROOT / "benchmarks").items():
        lines.append(f"| `{name}` | `benchmarks/{script.name}` | {_cell(summary)} |")
        doc = ast.get_docstring(ast.parse(script.read_text())) or ""
        usage = re.search(r"Usage:\s*``(.+?)``", doc, flags=re.DOTALL)
        if usage:
            usages.append(" ".join(usage.group(1).split()))
    if usages:
        lines += ["", "Usage, from each script's docstring:", "", "```bash", *usages, "```"]
    return "\n".join(lines)


def _leaves(data: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    if isinstance(data, dict) and depth < 3:
        found = []
        for key, value in data.items():
            found += _leaves(value, f"{prefix}.{key}" if prefix else str(key), depth + 1)
        return found
    if isinstance(data, (int, float, str, bool)):
        return [(prefix, data)]
    return []


def figures_reference() -> str:
    """Each committed result under ``benchmarks/results/``: the script and command that made it, its figures."""
    from trustee_env.cli import benchmark_scripts

    scripts = benchmark_scripts(ROOT / "benchmarks")
    lines: list[str] = []
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        data = json.loads(path.read_text())
        stem = path.stem.split("-")[0]
        script = scripts.get(stem.removeprefix("bench_"))
        command = data.get("command") if isinstance(data, dict) else None
        if not command and script:
            command = f"python benchmarks/{script[0].name}"
        lines += [f"### `benchmarks/results/{path.name}`", ""]
        if script:
            lines += [_cell(script[1]), ""]
        if command:
            lines += ["```bash", " ".join(command) if isinstance(command, list) else str(command), "```", ""]
        leaves = [(key, value) for key, value in _leaves(data) if not key.split(".")[-1].startswith("_")]
        if leaves:
            lines += ["| figure | value |", "|---|---|"]
            lines += [f"| `{_cell(key)}` | {_cell(json.dumps(value))} |" for key, value in leaves[:60]]
            if len(leaves) > 60:
                lines.append(f"| … | {len(leaves) - 60} more in the file |")
            lines.append("")
    if not lines:
        return "No results are committed yet."
    return "\n".join(lines).rstrip()


GENERATORS: dict[str, Callable[[], str]] = {
    "config": config_reference,
    "cli": cli_reference,
    "errors": errors_reference,
    "benchmarks": benchmarks_reference,
    "figures": figures_reference,
}


# ------------------------------------------------------------------------------------------- blocks


def refresh(markdown: str, cache: dict[str, str] | None = None) -> str:
    """``markdown`` with every generated block rewritten from the code."""
    cache = {} if cache is None else cache

    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in GENERATORS:
            raise ValueError(f"unknown generated block {name!r} (known: {', '.join(GENERATORS)})")
        if name not in cache:
            cache[name] = GENERATORS[name]().rstrip() + "\n"
        return match.group(1) + cache[name] + match.group(4)

    return BLOCK.sub(fill, markdown)


def pages() -> list[Path]:
    """Every Markdown page of the site (the hooks folder is not part of it)."""
    return sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.relative_to(DOCS).parts)


def stale_pages() -> list[str]:
    """Pages whose generated blocks differ from what the code generates now."""
    cache: dict[str, str] = {}
    return [str(p.relative_to(ROOT)) for p in pages() if refresh(p.read_text(), cache) != p.read_text()]


def write_all() -> list[str]:
    """Rewrite every stale page; returns the ones written."""
    cache: dict[str, str] = {}
    written = []
    for page in pages():
        text = page.read_text()
        new = refresh(text, cache)
        if new != text:
            page.write_text(new)
            written.append(str(page.relative_to(ROOT)))
    return written


def navigation(docs_dir: Path = DOCS) -> list[Any]:
    """The nav: known pages in reading order, then every other page (so none is ever left out)."""
    all_pages = [p.relative_to(docs_dir).as_posix() for p in sorted(docs_dir.rglob("*.md"))]
    all_pages = [p for p in all_pages if not p.startswith("hooks/")]
    placed: set[str] = set()
    nav: list[Any] = []
    for title, entries in NAV:
        section: list[Any] = []
        for entry in entries:
            chosen = [p for p in all_pages if (p.startswith(entry) if entry.endswith("/") else p == entry)]
            section += [p for p in chosen if p not in placed]
            placed.update(chosen)
        if section:
            nav.append({title: section})
    rest = [p for p in all_pages if p not in placed]
    if rest:
        nav.append({"More": rest})
    return nav


# ------------------------------------------------------------------------------------------- mkdocs hook API


def on_config(config: Any) -> Any:
    """Build the nav from the pages present (mkdocs.yml has none of its own)."""
    if not config.get("nav"):
        config["nav"] = navigation(Path(config["docs_dir"]))
    return config


_BUILD_CACHE: dict[str, str] = {}


def on_pre_build(config: Any) -> None:
    """Generate each block once per build."""
    _BUILD_CACHE.clear()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Refresh the generated blocks from the code before the page is rendered."""
    return refresh(markdown, _BUILD_CACHE)


def main(argv: list[str] | None = None) -> int:
    """``python docs/hooks/gen_docs.py [--check]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is stale; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for page in stale:
            print(f"stale: {page}")
        return 1 if stale else 0
    for page in write_all():
        print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
