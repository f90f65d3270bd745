"""The documentation's pages: every README section or file they include exists, and every
relative link and image in the result points at a file (what ``mkdocs build --strict``
checks, without MkDocs)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

TOP = Path(__file__).parent.parent
DOCS = TOP / "docs"
_spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
assert _spec is not None
assert _spec.loader is not None
hooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hooks)

PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _render(page: str) -> str:
    text = (DOCS / page).read_text(encoding="utf-8")
    fake_page = SimpleNamespace(file=SimpleNamespace(src_uri=page))
    config = SimpleNamespace(config_file_path=str(TOP / "mkdocs.yml"))
    return str(hooks.on_page_markdown(text, page=fake_page, config=config))


@pytest.mark.parametrize("page", PAGES)
def test_page_includes_resolve_and_links_exist(page: str) -> None:
    text = _render(page)
    # Every include was put in, every section marker taken out.
    assert not hooks._INCLUDE.search(text)
    assert not re.search(r"^<!-- --8<-- \[", text, re.MULTILINE)
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (DOCS / page).parent.joinpath(target).resolve().exists(), (page, target)


def test_every_page_is_in_the_nav_and_every_readme_section_is_shown() -> None:
    nav = (TOP / "mkdocs.yml").read_text()
    assert all(page in nav for page in PAGES)
    readme = (TOP / "README.md").read_text()
    sections = re.findall(r"<!-- --8<-- \[start:([\w-]+)\] -->", readme)
    shown = "".join((DOCS / p).read_text() for p in PAGES)
    assert all(f'"README.md:{name}"' in shown for name in sections), sections


def test_a_missing_section_stops_the_build(tmp_path: Path) -> None:
    (tmp_path / "mkdocs.yml").write_text("")
    (tmp_path / "a.md").write_text("<!-- --8<-- [start:x] -->\nbody\n<!-- --8<-- [end:x] -->\n")
    page = SimpleNamespace(file=SimpleNamespace(src_uri="p.md"))
    config = SimpleNamespace(config_file_path=str(tmp_path / "mkdocs.yml"))
    assert hooks.on_page_markdown('--8<-- "a.md:x"', page=page, config=config).strip() == "body"
    with pytest.raises(ValueError, match="no section 'y'"):
        hooks.on_page_markdown('--8<-- "a.md:y"', page=page, config=config)
