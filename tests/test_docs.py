"""The documentation: a short README, docs/ pages whose links and anchors resolve, the mkdocs site."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify

MAX_README_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
#: An inline link or image: [text](target) or ![alt](target), an optional "title" after the target.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(CODE_SPAN.sub("", line))
    return lines


def _heading_text(raw: str) -> str:
    """A heading's text as the toc extension sees it once rendered: no markup characters."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # links keep their text
    text = text.replace("`", "")
    return re.sub(r"(\*\*|__|\*)", "", text)


def anchors(path: Path) -> set[str]:
    """The ids MkDocs' toc extension gives the headings of a markdown file (``_1`` for repeats)."""
    ids: set[str] = set()
    fenced = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = HEADING.match(line) if not fenced else None
        if m:
            base = slugify(_heading_text(m[2]), "-")
            anchor, n = base, 0
            while anchor in ids:
                n += 1
                anchor = f"{base}_{n}"
            ids.add(anchor)
    return ids


def broken_links(files: list[Path]) -> list[str]:
    """Every relative link of ``files`` whose file is missing or whose ``#anchor`` is no heading.

    Links to web addresses (``https:``, ``mailto:`` ...) are not followed; links inside code
    blocks and code spans are not links.
    """
    problems: list[str] = []
    for source in files:
        for line in _prose_lines(source.read_text()):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                    continue
                path_part, _, anchor = target.partition("#")
                dest = (source.parent / path_part).resolve() if path_part else source
                if not dest.exists():
                    problems.append(f"{source.name}: link to {target}: {path_part} does not exist")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    problems.append(
                        f"{source.name}: link to {target}: {dest.name} has no heading #{anchor}"
                    )
    return problems


def _doc_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in _nav_pages(v)]
    return [p for item in nav or [] for p in _nav_pages(item)]


def _mkdocs_config(root: Path) -> dict:
    return yaml.safe_load((root / "mkdocs.yml").read_text())


def test_the_readme_is_short(root):
    n = len((root / "README.md").read_text().splitlines())
    assert n <= MAX_README_LINES, (
        f"README.md has {n} lines (at most {MAX_README_LINES}): move a section to docs/"
    )


def test_every_relative_link_and_anchor_of_the_readme_and_docs_resolves(root):
    files = _doc_files(root)
    assert len(files) > 2, "docs/*.md not found"
    assert broken_links(files) == []


def test_the_link_checker_reports_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "other.md").write_text(
        "# Other page\n\n## What `make report` writes\n\n```bash\n# not a heading\n```\n"
    )
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md#what-make-report-writes) [fine too](#page) [web](https://example.org/x.md)\n"
        "[gone](missing.md) and [no anchor](other.md#not-a-heading)\n"
        "`[in code](nowhere.md)`\n\n"
        "```\n[in a block](nowhere_either.md)\n```\n"
    )
    problems = broken_links([page])
    assert len(problems) == 2, problems
    assert "missing.md does not exist" in problems[0]
    assert "other.md has no heading #not-a-heading" in problems[1]


def test_headings_are_slugified_as_mkdocs_does(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "# Case–control data: real disease labels, donors kept apart\n"
        "## What `make report` writes\n## Tests\n## Tests\n"
    )
    assert anchors(page) == {
        "casecontrol-data-real-disease-labels-donors-kept-apart",
        "what-make-report-writes",
        "tests",
        "tests_1",
    }


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists(root):
    config = _mkdocs_config(root)
    docs = root / config.get("docs_dir", "docs")
    nav = _nav_pages(config["nav"])
    missing = [p for p in nav if not (docs / p).is_file()]
    assert missing == [], f"mkdocs.yml's nav names pages that do not exist: {missing}"
    pages = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md"))
    assert sorted(set(nav)) == pages, (
        f"pages not in mkdocs.yml's nav: {sorted(set(pages) - set(nav))}"
    )
    assert len(nav) == len(set(nav)), "a page is listed twice in the nav"


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip(
            "mkdocs is not installed in this environment (pip install mkdocs mkdocs-material)"
        )
    exe = Path(sys.executable).parent / "mkdocs"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "mkdocs"]
    # No --quiet: mkdocs 1.6 then drops warnings before strict mode counts them (mkdocs#4126).
    return subprocess.run(
        [*command, "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )


def test_the_site_builds_in_strict_mode(root, tmp_path):
    done = _mkdocs_build(root / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_strict_mode_fails_on_a_broken_anchor(root, tmp_path):
    shutil.copytree(root / "docs", tmp_path / "docs")
    shutil.copy(root / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with (tmp_path / "docs" / "index.md").open("a") as f:
        f.write("\n[a broken anchor](results.md#no-such-heading)\n")
    done = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-heading" in done.stdout + done.stderr
