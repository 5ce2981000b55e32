"""How a package's ``__init__`` claims its public names, so users never see the private modules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import FunctionType, GenericAlias

__all__ = ["claim_public_names"]


def claim_public_names(namespace: Mapping[str, object], names: Iterable[str], module: str) -> None:
    """Set ``__module__`` of the classes and functions *names* in *namespace* to *module*.

    Tracebacks and reprs then show the public path (``nfmp_client.EventHeader``), not the private module.
    Type aliases are left alone (on Python 3.10 a ``Callable[...]`` alias passes for a class but refuses a
    new ``__module__``).
    """
    for name in names:
        obj = namespace[name]
        if isinstance(obj, GenericAlias):
            continue
        if isinstance(obj, (type, FunctionType)):
            obj.__module__ = module
