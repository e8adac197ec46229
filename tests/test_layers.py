"""Imports flow one way: each module may import its own layer and the layers below, never above.

The layers, bottom to top (a module's layer comes from its name, which says it):
    base         core/, storage/, taskqueue/
    domain       dms/, and the *_rules, *_gateway and other Slack-free modules of people/,
                 customers/, media/, spaces/ (no Slack library here either)
    port         slackapi/ (the Slack service) and blocks/ (Block Kit: imports the base only)
    flows        *_flow modules: what happens, in which order, which Slack calls
    listeners    handlers/, and the HTTP surfaces customers.customer_page, customers.twilio_webhooks
    composition  server/, bot.py
Flows reach Slack through slackapi/ only, never the Slack libraries themselves.
Imports under `if TYPE_CHECKING:` are type names only (never executed) and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "core",
    "storage",
    "taskqueue",
    "dms",
    "people",
    "customers",
    "media",
    "spaces",
    "reports",
    "slackapi",
    "blocks",
    "handlers",
    "server",
)
BASE, DOMAIN, PORT, FLOWS, LISTENERS, COMPOSITION = range(6)
NAMES = ("base", "domain", "port", "flows", "listeners", "composition")
SLACK_LIBRARIES = ("slack_sdk", "slack_bolt")


def layer_of(module: str) -> int | None:
    """The layer of one of our modules (dotted name), or None for a third-party module."""
    top, _, rest = module.partition(".")
    if module == "bot" or top == "server":
        return COMPOSITION
    if top == "handlers" or module in ("customers.customer_page", "customers.twilio_webhooks"):
        return LISTENERS
    if module.endswith("_flow"):
        return FLOWS
    if top in ("slackapi", "blocks"):
        return PORT
    if top in ("core", "storage", "taskqueue"):
        return BASE
    if top in ("dms", "people", "customers", "media", "spaces", "reports"):
        return DOMAIN
    return None


def modules() -> list[tuple[str, Path]]:
    found = [("bot", ROOT / "bot.py")]
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        exact = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING" and ast.unparse(test.value) == "typing"
        )
        if isinstance(node, ast.If) and exact:  # `if TYPE_CHECKING or x:` runs at run time: counted
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import executed at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skipped = _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # "from storage import leases": the module imported is storage.leases
            found += [
                (node.lineno, f"{base}.{alias.name}")
                for alias in node.names
                if layer_of(f"{base}.{alias.name}") is not None
                and (ROOT / Path(*f"{base}.{alias.name}".split("."))).with_suffix(".py").exists()
            ]
    return found


def violations() -> list[str]:
    problems = []
    for module, path in modules():
        own = layer_of(module)
        assert own is not None, f"{module} belongs to no layer: name it for its layer"
        for line, imported in imports_of(module, path):
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{line}"
            if imported.split(".")[0] in SLACK_LIBRARIES and own in (BASE, DOMAIN, FLOWS):
                # Flows call Slack through slackapi/ (its errors, retries and rate limits), never directly.
                problems.append(f"{where}: {NAMES[own]} module {module} imports the Slack library {imported}")
                continue
            theirs = layer_of(imported)
            if theirs is None:
                continue
            if theirs > own:
                problems.append(f"{where}: {NAMES[own]} module {module} imports {NAMES[theirs]} module {imported}")
            elif module.startswith("blocks") and not imported.startswith(("blocks", "core", "storage")):
                problems.append(f"{where}: the Block Kit package imports {imported}; it may import only core/ and storage/")
    return problems


def test_imports_flow_one_way():
    assert violations() == []


def test_nothing_outside_handlers_and_the_composition_root_imports_handlers():
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for module, path in modules()
        if layer_of(module) < LISTENERS
        for line, imported in imports_of(module, path)
        if imported.split(".")[0] == "handlers"
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "source,module,expected",
    [
        (
            "from handlers import files_listeners\n",
            "spaces.publish_flow",
            "flows module spaces.publish_flow imports listeners module handlers",
        ),
        ("from slack_sdk import WebClient\n", "people.unread_rules", "imports the Slack library slack_sdk"),
        (
            "from people.participant_rules import Changes\n",
            "blocks.files_view",
            "the Block Kit package imports people.participant_rules",
        ),
        (
            "from . import send_flow\n",
            "customers.send_rules",
            "domain module customers.send_rules imports flows module customers.send_flow",
        ),
    ],
)
def test_the_check_names_the_file_the_line_and_both_layers(tmp_path, monkeypatch, source, module, expected):
    """The check itself fails on an import that goes up (a test of the test)."""
    path = tmp_path / "probe.py"
    path.write_text("import os\n" + source)
    monkeypatch.setattr(__import__(__name__, fromlist=["modules"]), "modules", lambda: [(module, path)])
    problems = violations()
    assert problems and all(p.startswith("probe.py:2: ") for p in problems)
    assert any(expected in p for p in problems), problems


def test_type_only_imports_are_not_counted(tmp_path, monkeypatch):
    path = tmp_path / "probe.py"
    path.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from people.notification_rules import Digest\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["modules"]), "modules", lambda: [("blocks.home_view", path)])
    assert violations() == []
