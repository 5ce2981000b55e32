"""The architecture's import rules: the model is pure, only the codec touches XML."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "nfmp_client"

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


# The public modules that only gather names (the package's __init__ and the submodules that re-export):
# docstring, imports from private modules, __all__, and the call that claims the names.
FACADES = [
    "__init__.py",
    "codec.py",
    "engine.py",
    "selector.py",
    "state.py",
    "xmlapi.py",
    "testing/__init__.py",
]
PUBLIC_SUBMODULES = {"codec", "engine", "selector", "state", "xmlapi", "testing", "metrics", "aio"}


@pytest.mark.parametrize("module", FACADES)
def test_facades_only_gather_names(module: str) -> None:
    """A facade holds no code of its own: what it exports lives in a private module, documented there."""
    body = ast.parse((PACKAGE / module).read_text()).body
    for node in body[1:]:  # after the docstring
        if isinstance(node, ast.ImportFrom):
            assert node.level == 1 or node.module == "_public", f"{module}: {ast.unparse(node)}"
            sources = [node.module] if node.module else [alias.name for alias in node.names]
            for source in sources:
                assert source.startswith("_") or source in PUBLIC_SUBMODULES, f"{module}: {ast.unparse(node)}"
        elif isinstance(node, ast.Assign):
            assert [ast.unparse(target) for target in node.targets] == ["__all__"], (
                f"{module}: {ast.unparse(node)}"
            )
        else:
            assert isinstance(node, ast.Expr), f"{module}: {ast.unparse(node)}"
            assert ast.unparse(node) == "_claim_public_names(globals(), __all__, __name__)"


def _private_modules() -> list[Path]:
    return sorted(
        path for path in PACKAGE.rglob("*.py") if path.name.startswith("_") and path.name != "__init__.py"
    )


@pytest.mark.parametrize("path", _private_modules(), ids=lambda path: path.relative_to(PACKAGE).as_posix())
def test_private_modules_do_not_import_public_ones(path: Path) -> None:
    """Private modules import each other, never a public facade: no cycle, and each name claimed once."""
    relative = path.relative_to(PACKAGE)
    package = "nfmp_client" + "".join("." + part for part in relative.parent.parts)
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            imported.add(module)
            imported.update(f"{module}.{alias.name}" for alias in node.names)
    public = {f"nfmp_client.{name}" for name in PUBLIC_SUBMODULES} | {"nfmp_client"}

    assert not {name for name in imported if name in public}


@pytest.mark.parametrize(
    "path",
    sorted([*ROOT.joinpath("examples").glob("*.py"), *ROOT.joinpath("benchmarks").glob("*.py")]),
    ids=lambda path: path.relative_to(ROOT).as_posix(),
)
def test_examples_use_the_public_surface(path: Path) -> None:
    """Examples and benchmarks are what applications copy: they import public modules only."""
    private = {
        name
        for name in imported_modules(path)
        if name.startswith("nfmp_client.") and any(part.startswith("_") for part in name.split(".")[1:])
    }

    assert not private, f"{path.name} imports {sorted(private)}"
