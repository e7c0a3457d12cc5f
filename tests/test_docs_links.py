"""The documentation's internal links lead somewhere: for README.md and every
docs/*.md, each Markdown link or image whose target is not a web or mail
address names a file that exists (relative to the document), and its
``#anchor``, if any, is a heading of the target Markdown file, by GitHub's
anchor rules. Links inside fenced code blocks and code spans are not links.
No network, no server."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200

EXTERNAL = ("http://", "https://", "mailto:")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target), with an optional "title".
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = FENCE.match(line)
        if fence is None:
            if opening:
                fence = opening.group(1)
                continue
            lines.append((number, line))
        elif opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence) \
                and not line.strip()[len(opening.group(1)):].strip():
            fence = None
    return lines


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: its text as rendered (link targets
    and formatting dropped), lowercased, every character that is not a
    letter, digit, '-', '_' or space removed, each space turned into '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file; repeated headings get -1, -2..."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        if anchor in seen:
            seen[anchor] += 1
            found.add(f"{anchor}-{seen[anchor]}")
        else:
            seen[anchor] = 0
            found.add(anchor)
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every Markdown link and image outside code."""
    found: list[tuple[int, str]] = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(CODE_SPAN.sub("", line)):
            found.append((number, match.group(2)))
    return found


def broken_links(path: Path) -> list[str]:
    """What is wrong with a document's internal links, one line per link."""
    problems: list[str] = []
    for number, target in links(path):
        if target.lower().startswith(EXTERNAL):
            continue
        where = f"{path.name}:{number}: ({target})"
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not file_part and not anchor:
            problems.append(f"{where} has an empty target")
            continue
        if not linked.exists():
            problems.append(f"{where}: no file {linked}")
            continue
        if anchor and linked.suffix.lower() == ".md" and anchor not in anchors(linked):
            problems.append(f"{where}: {linked.name} has no heading with anchor #{anchor}")
    return problems


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_internal_links_resolve(document):
    assert links(document), f"{document.name}: no links found (is the checker reading it?)"
    problems = broken_links(document)
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_documents_are_there():
    names = {p.relative_to(ROOT).as_posix() for p in DOCUMENTS}
    assert {"README.md", "docs/api.md", "docs/operations.md", "docs/architecture.md",
            "docs/performance.md", "docs/testing.md"} <= names, names


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines, at most {README_MAX_LINES}"


def test_github_anchor_rules():
    assert github_anchor("Observing it") == "observing-it"
    assert github_anchor("`make run` and `make test`") == "make-run-and-make-test"
    assert github_anchor("Time zones, and daylight saving!") == "time-zones-and-daylight-saving"
    assert github_anchor("snake_case and kebab-case") == "snake_case-and-kebab-case"
    assert github_anchor("Redis keys (all of them)") == "redis-keys-all-of-them"
    assert github_anchor("See [the API](api.md)") == "see-the-api"


def test_the_checker_reports_broken_links(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Real section\n\n## Real section\n")
    (tmp_path / "picture.png").write_bytes(b"")
    sample = tmp_path / "sample.md"
    sample.write_text(
        "# Sample\n"
        "\n"
        "Fine: [other](other.md), [section](other.md#real-section),\n"
        "[repeated](other.md#real-section-1), [here](#sample), ![img](picture.png),\n"
        "[web](https://example.com/nowhere.md#x), `[code span](nowhere.md)`.\n"
        "\n"
        "Broken: [gone](missing.md) and [no such](other.md#no-such-heading).\n"
        "\n"
        "```\n"
        "[inside a fence](also-missing.md)\n"
        "```\n"
    )
    problems = broken_links(sample)
    assert len(problems) == 2, problems
    assert "sample.md:7: (missing.md)" in problems[0] and "no file" in problems[0]
    assert "sample.md:7: (other.md#no-such-heading)" in problems[1]
    assert "no heading with anchor #no-such-heading" in problems[1]
