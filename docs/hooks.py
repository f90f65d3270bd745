"""MkDocs hook: the pages' ``--8<-- "FILE"`` and ``--8<-- "FILE:SECTION"`` lines.

Most pages are sections of the README (between its ``<!-- --8<-- [start:NAME] -->`` and
``<!-- --8<-- [end:NAME] -->`` markers, which GitHub does not show) or whole files of the
repository. This hook puts them in before the Markdown is read, and rewrites their
``](docs/...`` paths (the README's figures, seen from the repository's top) relative to
each page, so that MkDocs can check every link. A missing file or section stops the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_INCLUDE = re.compile(r'^--8<-- "([^":]+)(?::([\w-]+))?"\s*$', re.MULTILINE)
_MARKER = re.compile(r"^<!-- --8<-- \[(start|end):[\w-]+\] -->\n?", re.MULTILINE)


def _section(text: str, name: str, path: str) -> str:
    start = f"<!-- --8<-- [start:{name}] -->"
    end = f"<!-- --8<-- [end:{name}] -->"
    if start not in text or end not in text:
        raise ValueError(f"{path} has no section {name!r} (no {start} ... {end})")
    return text.split(start, 1)[1].split(end, 1)[0]


def on_page_markdown(markdown: str, page: Any, config: Any, **_: Any) -> str:
    """Put in every included file or section, its ``](docs/`` paths made relative."""
    top = Path(config.config_file_path).parent
    up = "../" * page.file.src_uri.count("/")

    def include(match: re.Match[str]) -> str:
        path, name = match.group(1), match.group(2)
        text = (top / path).read_text(encoding="utf-8")
        if name is not None:
            text = _section(text, name, path)
        text = _MARKER.sub("", text)
        return text.replace("](docs/", "](" + up)

    return _INCLUDE.sub(include, markdown)
