"""The README and the docs site stay whole without building it (CI's `mkdocs build --strict` checks the rest).

README's relative links point at files that exist; every page under docs/ is in mkdocs.yml's nav and every
nav entry is a page; each section a page includes from README (``--8<-- "README.md:NAME"``) is marked there;
every module of dueldqn is on an API page. No mkdocs import: these run in the everyday test suite.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(
    not (ROOT / "mkdocs.yml").is_file(), reason="needs the source tree's README.md, docs/ and mkdocs.yml"
)

LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target), images included
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::([A-Za-z0-9_-]+))?"$', flags=re.MULTILINE)
API_BLOCK = re.compile(r"^::: (dueldqn(?:\.\w+)*)$", flags=re.MULTILINE)


def nav_pages(entry: Any) -> list[str]:
    """Every page path in a mkdocs nav entry (a list, a ``{title: entry}`` mapping or a path)."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [page for item in entry for page in nav_pages(item)]
    if isinstance(entry, dict):
        return [page for value in entry.values() for page in nav_pages(value)]
    raise AssertionError(f"unexpected nav entry {entry!r} in mkdocs.yml")


def test_readme_links_point_at_files() -> None:
    targets = [t.split("#")[0] for t in LINK.findall((ROOT / "README.md").read_text())]
    local = [t for t in targets if t and "://" not in t and not t.startswith("mailto:")]
    assert any(t.startswith("docs/") for t in local), "README.md links to no docs page"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_every_docs_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    in_nav = nav_pages(config["nav"])
    assert len(in_nav) == len(set(in_nav)), f"a page is twice in mkdocs.yml's nav: {in_nav}"
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(in_nav) == pages, (
        f"docs/ pages not in mkdocs.yml's nav: {sorted(set(pages) - set(in_nav))}; "
        f"nav entries with no page: {sorted(set(in_nav) - set(pages))}"
    )


def test_included_sections_are_marked() -> None:
    included = [(page, *m) for page in DOCS.rglob("*.md") for m in SNIPPET.findall(page.read_text())]
    assert ("README.md", "intro") in {(f, s) for _, f, s in included}
    for page, file, section in included:
        text = (ROOT / file).read_text()
        if section:
            for edge in ("start", "end"):
                marker = f"--8<-- [{edge}:{section}]"
                assert text.count(marker) == 1, f"{page.name} includes {file}:{section}; {file} needs one {marker!r}"
            assert text.index(f"[start:{section}]") < text.index(f"[end:{section}]"), (file, section)


def test_every_module_is_on_an_api_page() -> None:
    documented = {m for page in (DOCS / "api").glob("*.md") for m in API_BLOCK.findall(page.read_text())}
    package = ROOT / "dueldqn"
    modules = {
        ".".join(("dueldqn", *p.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        for p in package.rglob("*.py")
    }
    assert documented <= modules, f"API pages document modules that do not exist: {sorted(documented - modules)}"
    undocumented = sorted(modules - documented - {"dueldqn"})  # the package's names are listed in api/index.md
    assert not undocumented, f"modules on no API page (add a `::: module` line to a page in docs/api/): {undocumented}"
