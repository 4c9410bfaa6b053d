"""The README's adoption section as data: its fenced blocks by role, and the substitutions that make them a project's.

The section marks each block with ``<!-- adoption-test: ROLE -->`` on the line before its fence,
so the tests run exactly what a reader copies; a block that disappears, moves or changes its
placeholders fails them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Adopt it in your project"
ROLES = ("install", "settings", "check", "web", "celery-app", "celery", "monitoring-config", "generate",
         "prometheus")
_BLOCK = re.compile(r"<!-- adoption-test: (?P<role>[a-z-]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)\n```", re.S)


@dataclass(frozen=True)
class Block:
    role: str
    lang: str
    body: str


def section(text: str | None = None) -> str:
    text = README.read_text() if text is None else text
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    return text[start:] if end < 0 else text[start:end]


def blocks(text: str | None = None) -> dict[str, Block]:
    """Every marked block of the section by role; fails unless each role appears once, in order."""
    found = [Block(m["role"], m["lang"], m["body"]) for m in _BLOCK.finditer(section(text))]
    assert [b.role for b in found] == list(ROLES), f"README adoption blocks are {[b.role for b in found]}"
    return {b.role: b for b in found}


def substitute(text: str, table: list[tuple[str, str]]) -> str:
    """Apply (regex, replacement) pairs in order."""
    for pattern, repl in table:
        text = re.sub(pattern, lambda _m, r=repl: r, text)
    return text


def missing_placeholders(table: list[tuple[str, str]], text: str | None = None) -> list[str]:
    """The patterns of table that the section no longer contains (the README changed its placeholders)."""
    body = section(text)
    return [pattern for pattern, _ in table if not re.search(pattern, body)]


def commands(body: str) -> list[str]:
    """The command lines of a sh block (comments and blank lines left out)."""
    return [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")]
