"""The architecture's import rules: the model is pure, only the codec touches XML."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nfmp_client"

# Modules of the pure core must not reach for I/O, threads or the clock (they are tested with plain values).
IMPURE = {"stomp", "socket", "threading", "time", "subprocess", "os", "urllib", "http"}
RULES = {
    "_events.py": IMPURE | {"lxml", "nfmp_client._codec"},
    "_codec.py": IMPURE,
    "_exceptions.py": IMPURE | {"lxml"},
    "_xmlapi.py": IMPURE,
    "_config.py": IMPURE | {"lxml"},
    "_selector.py": IMPURE | {"lxml"},
    "_status.py": IMPURE | {"lxml"},
    "_watchdog.py": IMPURE | {"lxml"},
    "_dedup.py": IMPURE | {"lxml"},
    "_resync.py": IMPURE | {"lxml", "nfmp_client._codec"},
    "testing/_model.py": IMPURE - {"threading"} | {"lxml", "stomp"},
}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "nfmp_client." + node.module if node.level and node.module else node.module or ""
            modules.add(base)
    return modules


@pytest.mark.parametrize(("module", "forbidden"), sorted(RULES.items()))
def test_core_modules_stay_pure(module: str, forbidden: set[str]) -> None:
    """Pure modules import no transport, thread, clock or (for the model) XML library."""
    imported = imported_modules(PACKAGE / module)
    offending = {name for name in imported for bad in forbidden if name == bad or name.startswith(bad + ".")}

    assert not offending, f"{module} imports {sorted(offending)}"
