"""Read the runbooks: their sections, links and PromQL, ready to send to a Prometheus.

    for alert, query in runbook_queries():
        requests.get(f"{prometheus}/api/v1/query", params={"query": query})

Placeholders: a query names the thing the alert is about as a regex matcher on its label,
`view=~"$VIEW"`, so `.+` (any value) keeps it valid and matches whatever the live stack has.
Pass values={"VIEW": "jobs:detail"} to narrow it (values are RE2 regexes, as in the matcher).
Reused by the live-stack tests that check the runbook queries return data under real traffic.
"""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS_DIR = REPO / "runbooks"
INDEX = "README.md"

# Placeholder -> the alert label it stands for.
PLACEHOLDERS = {
    "VIEW": "view",
    "QUEUE": "queue_name",
    "JOB": "job",
    "INSTANCE": "instance",
    "TASK": "name",
    "HOSTNAME": "hostname",
}
ANY = ".+"
SECTIONS = ("Meaning", "Impact", "Diagnosis", "Mitigation")

_FENCE = re.compile(r"^[ \t]*```(\w*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
_PLACEHOLDER = re.compile(r"\$([A-Z][A-Z_]*)\b")
_LINK = re.compile(r"(?<!!)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")


def runbook_paths(directory=RUNBOOKS_DIR):
    """Return {alert name: path} of every runbook (every *.md but the index)."""
    return {p.stem: p for p in sorted(Path(directory).glob("*.md")) if p.name != INDEX}


def load_runbooks(directory=RUNBOOKS_DIR):
    """Return {alert name: Markdown text} of every runbook."""
    return {name: path.read_text() for name, path in runbook_paths(directory).items()}


def code_blocks(text, language=None):
    """Return the contents of the fenced blocks of text, only those of `language` if given."""
    return [m[2] for m in _FENCE.finditer(text) if language is None or m[1] == language]


def without_code(text):
    """Return text with its fenced blocks blanked out (headings and links in code do not count)."""
    return _FENCE.sub("", text)


def headings(text, level):
    """Return the titles of the headings of one level (outside code blocks), in order."""
    marks = "#" * level
    return [m[1].strip() for m in re.finditer(rf"^{marks} (.+)$", without_code(text), re.MULTILINE)]


def section(text, title):
    """Return the body of the `## title` section (up to the next `## ` heading), '' if absent."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    for heading, body in zip(parts[1::2], parts[2::2]):
        if heading.strip() == title:
            return body
    return ""


def links(text):
    """Return (link text, target) of every Markdown link outside code blocks."""
    return [(m[1], m[2]) for m in _LINK.finditer(without_code(text))]


def placeholders(query):
    """Return the placeholder names ($VIEW -> VIEW) a query uses."""
    return set(_PLACEHOLDER.findall(query))


def substitute(query, values=None):
    """Return query with every placeholder replaced by values[name], else by `.+`."""
    values = values or {}
    return _PLACEHOLDER.sub(lambda m: values.get(m[1], ANY) if m[1] in PLACEHOLDERS else m[0], query)


def raw_queries(directory=RUNBOOKS_DIR):
    """Return (alert, query) of every ```promql block, placeholders left in."""
    return [
        (alert, block.strip())
        for alert, text in load_runbooks(directory).items()
        for block in code_blocks(text, "promql")
    ]


def runbook_queries(values=None, directory=RUNBOOKS_DIR):
    """Return (alert, query) of every ```promql block of every runbook, placeholders substituted.

    values maps a placeholder name (VIEW, QUEUE, JOB, INSTANCE, TASK, HOSTNAME) to a regex;
    the default `.+` matches any value of the label.
    """
    return [(alert, substitute(query, values)) for alert, query in raw_queries(directory)]
