"""Product text stands alone: it cites public sources by their titles, never the project's own source notes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("README.md", "docs", "nfmp_client", "examples", "benchmarks", "scripts")
SUFFIXES = {".md", ".rst", ".py", ".java", ".xml", ".sh", ".cfg", ".toml", ""}
PRIVATE = re.compile(
    r"\bseed (?:document|00\d)|nfmp-jms-facts|\.\./shared/|/work/shared|"
    r"\b(?:broker|bridge|prior-art|performance-notes|style)\.md\b",
    re.IGNORECASE,
)


def _files() -> list[Path]:
    found: list[Path] = []
    for name in PRODUCT:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        found += [p for p in candidates if p.suffix in SUFFIXES and "_build" not in p.parts]
    return found


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_cites_no_document_a_user_does_not_have(path: Path) -> None:
    text = path.read_text(errors="replace")
    hits = [f"{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1) if PRIVATE.search(line)]
    assert not hits, "\n".join(hits)
