"""The README and docs/ render on GitHub: every table is a table, and every relative link and #anchor
lands. A markdown table needs its separator row right under the header and no blank line inside: rows
after a blank line render as raw pipes. A link to a moved section renders fine and leads nowhere."""

from __future__ import annotations

import re
from pathlib import Path

from tests.repo import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def prose(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            out.append((number, line))
    return out


def cells(row: str) -> int:
    """GitHub's cell count: `|` splits cells even inside backticks, unless escaped."""
    row = row.strip().replace("\\|", "")
    return len(row.removeprefix("|").removesuffix("|").split("|"))


def table_problems(text: str) -> list[str]:
    problems, rows = [], []
    for number, line in [*prose(text), (0, "")]:
        if line.lstrip().startswith("|"):
            rows.append((number, line))
            continue
        if rows:
            (first, header), *body = rows
            if not body or not SEPARATOR.match(body[0][1].strip()):
                problems.append(f"line {first}: pipe rows with no separator under a header (raw text)")
            else:
                problems += [
                    f"line {n}: {cells(r)} cells, the header has {cells(header)}"
                    for n, r in body
                    if cells(r) != cells(header)
                ]
        rows = []
    return problems


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for _, line in prose(page.read_text()) if line.startswith("#")}


def link_problems(page: Path) -> list[str]:
    problems = []
    for _, line in prose(page.read_text()):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                problems.append(f"{target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{target}: no such heading")
    return problems


def test_every_table_renders():
    found = {p.relative_to(ROOT).as_posix(): table_problems(p.read_text()) for p in PAGES}
    assert not {page: problems for page, problems in found.items() if problems}


def test_a_blank_line_inside_a_table_is_found():
    table = "| a | b |\n| --- | --- |\n| 1 | 2 |\n\n| 3 | 4 |\n"
    assert table_problems(table) == ["line 5: pipe rows with no separator under a header (raw text)"]
    piped = "| a | b |\n| --- | --- |\n| `x | y` | 2 |\n"  # a pipe in backticks still splits a cell
    assert table_problems(piped) == ["line 3: 3 cells, the header has 2"]


def test_every_relative_link_lands():
    found = {p.relative_to(ROOT).as_posix(): link_problems(p) for p in PAGES}
    assert not {page: problems for page, problems in found.items() if problems}


def test_the_readme_stays_short():
    """What it is, the two commands, the loop, your data and model, links: the rest lives in docs/."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
