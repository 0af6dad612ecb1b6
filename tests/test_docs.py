"""The README is a front page and docs/ holds the details: every relative link must lead somewhere."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    missing = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path) if path else page
        if not resolved.exists():
            missing.append(target)
        elif anchor and resolved.suffix == ".md" and not has_heading(resolved, anchor):
            missing.append(target)
    assert not missing, f"{page.name}: links to nothing: {missing}"


def has_heading(page: Path, anchor: str) -> bool:
    """GitHub's anchors: headings lower-cased, punctuation dropped, spaces as hyphens."""
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            if slug == anchor:
                return True
    return False


def test_the_front_page_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_the_link_check_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[there](missing.md) and [web](https://example.org) and\n```\n[code](nope.md)\n```\n")
    assert relative_links(page) == ["missing.md"]
