"""How a package's ``__init__`` claims its public names, so users never see the private modules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import FunctionType

__all__ = ["claim_public_names"]


def claim_public_names(namespace: Mapping[str, object], names: Iterable[str], module: str) -> None:
    """Set ``__module__`` of the classes and functions *names* in *namespace* to *module*.

    Tracebacks and reprs then show the public path (``nfmp_client.EventHeader``), not the private module.
    """
    for name in names:
        obj = namespace[name]
        if isinstance(obj, (type, FunctionType)):
            obj.__module__ = module
