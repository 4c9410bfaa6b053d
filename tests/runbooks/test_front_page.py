"""runbooks/README.md opens with the on-call front page; every command has a `make up` and a compose form."""

import re

import pytest

from tests.support.runbooks import RUNBOOKS_DIR, code_blocks, headings, load_runbooks, section, without_code

FRONT = (RUNBOOKS_DIR / "README.md").read_text()
FRONT_SECTIONS = ["The first five minutes", "Escalation and ownership", "Reaching the UIs",
                  "Silences and inhibited alerts", "Instance to host", "Roll back", "Kernel messages", "Probes",
                  "Walkthrough: RedisDown"]


def _slug(title):
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _table_rows(text):
    """Return the cells of each body row of every Markdown table (header and rule lines skipped)."""
    rows, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line) and i + 1 < len(lines) \
                and not re.match(r"^\|[-| ]+\|$", lines[i + 1]):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def test_the_front_page_comes_first_with_every_section():
    assert FRONT.splitlines()[0] == "# On-call"
    titles = headings(FRONT, 2)
    assert titles[:len(FRONT_SECTIONS)] == FRONT_SECTIONS
    assert FRONT.index("# Runbooks") > FRONT.index("## Walkthrough: RedisDown")


def test_escalation_has_placeholders_for_the_team_to_fill_in():
    rows = _table_rows(section(FRONT, "Escalation and ownership"))
    assert len(rows) >= 6 and all(re.fullmatch(r"`<[^>]+>`(, `<[^>]+>`)*", who) for _, who in rows), rows


@pytest.mark.parametrize("title", ["Reaching the UIs", "Silences and inhibited alerts", "Instance to host",
                                   "Roll back", "Kernel messages"])
def test_every_command_row_has_the_make_up_and_the_compose_form(title):
    body = section(FRONT, title)
    header = next(line for line in body.splitlines() if line.startswith("|"))
    assert "`make up`" in header and "docker compose" in header, header
    rows = _table_rows(body)
    assert rows
    for row in rows:
        local, compose = row[-2], row[-1]
        assert local and compose, row  # no half-filled row: each stack has its way


def test_silence_and_inhibited_commands_are_amtool_against_the_stack():
    body = section(FRONT, "Silences and inhibited alerts")
    for needed in ("silence add", "silence query", "silence expire", "alert query --inhibited",
                   "alert query --silenced"):
        assert body.count(needed) >= 2, needed  # both stacks
    assert "--alertmanager.url=http://127.0.0.1:$ALERTMANAGER_PORT" in body
    assert "--alertmanager.url=http://127.0.0.1:9093" in body


def test_ssh_tunnel_forwards_every_loopback_ui():
    [command] = code_blocks(section(FRONT, "Reaching the UIs"), "sh")
    forwarded = set(re.findall(r"-L (\d+):127\.0\.0\.1:(\d+)", command))
    assert {("9090", "9090"), ("9093", "9093"), ("9095", "9095"), ("3000", "3000")} <= forwarded


def test_no_runbook_hides_an_empty_dmesg():
    """`dmesg 2>/dev/null` without root prints nothing at all (dmesg_restrict): every page uses the journal."""
    for name, text in {**load_runbooks(), "README": FRONT}.items():
        for block in code_blocks(text, "sh"):
            assert not re.search(r"(?<!sudo )dmesg[^\n]*2>\s*/dev/null", block), name
    assert "journalctl -k" in section(FRONT, "Kernel messages")


def test_the_redisdown_walkthrough_gives_both_forms_of_every_step():
    steps = re.findall(r"^\d+\. (.+?)(?=^\d+\. |\Z)", section(FRONT, "Walkthrough: RedisDown"), re.M | re.S)
    assert len(steps) >= 5
    for step in steps[1:]:  # after acknowledging, every step has commands for both stacks
        commands = re.findall(r"`([^`]+)`", step)
        assert any(c.startswith(("redis-cli", "make", "amtool", "supervisorctl", "grep", "tail")) for c in commands), step
        # amtool runs the same against either stack's Alertmanager (the compose form is the table's)
        assert any(c.startswith("docker compose") for c in commands) or \
            all(c.startswith("amtool") for c in commands if " " in c), step


def test_anchors_into_the_front_page_exist():
    anchors = {_slug(t) for level in (1, 2) for t in headings(FRONT, level)}
    for name, text in {**load_runbooks(), "README": FRONT}.items():
        for target in re.findall(r"\]\((?:README\.md)?#([\w-]+)\)", without_code(text)):
            if name != "README" and "README.md#" not in text:
                continue
            assert target in anchors, (name, target)
