"""The public surface: what nfmp_client exports, and that each export is documented."""

from __future__ import annotations

import inspect
import typing

import attrs
import pytest

import nfmp_client
import nfmp_client.engine
import nfmp_client.testing

# Type aliases are Unions: Python cannot attach a docstring to them at run time. Their documentation is
# the attribute docstring in the module (rendered by Sphinx), checked by test_aliases_documented_in_source.
ALIASES = {"AttributeValue", "DataEvent", "Event", "SystemEvent", "XmlApiRequest"}


def public_names() -> list[str]:
    return [name for name in nfmp_client.__all__ if not name.startswith("__")]


def test_all_is_complete() -> None:
    """__all__ lists every public name once, and nothing public is left out."""
    exported = set(nfmp_client.__all__)
    submodules = {"testing", "metrics", "engine"}  # public modules of their own, imported on demand
    visible = {name for name in vars(nfmp_client) if not name.startswith("_") and name not in submodules}

    assert len(exported) == len(nfmp_client.__all__)
    assert visible == exported - {"__version__"}


@pytest.mark.parametrize("name", sorted(set(public_names()) - ALIASES))
def test_documented_and_public_module(name: str) -> None:
    """Every public class and function has a docstring and claims the public module in tracebacks."""
    obj = getattr(nfmp_client, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        assert inspect.getdoc(obj), f"{name} has no docstring"
        assert obj.__module__ == "nfmp_client"


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_aliases_documented_in_source(name: str) -> None:
    """Every public type alias is followed by a docstring in its module's source."""
    source = inspect.getsource(nfmp_client._events) + inspect.getsource(nfmp_client._xmlapi)
    definition = source.index(f"\n{name} = ")
    after = source[definition:].split('"""', 1)[0]

    assert typing.get_origin(getattr(nfmp_client, name)) is typing.Union
    assert ")\n" in after or "]\n" in after, f"{name} has no docstring after it"


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in public_names()
        if inspect.isclass(getattr(nfmp_client, n)) and attrs.has(getattr(nfmp_client, n))
    ],
)
def test_value_classes_are_frozen_and_keyword_only(name: str) -> None:
    """Public attrs classes are frozen values with keyword-only fields."""
    cls = getattr(nfmp_client, name)

    assert all(field.kw_only for field in attrs.fields(cls))
    assert cls.__setattr__ is not object.__setattr__


def test_testing_all_is_complete() -> None:
    """nfmp_client.testing lists every public name once, and nothing public is left out."""
    exported = set(nfmp_client.testing.__all__)
    visible = {name for name in vars(nfmp_client.testing) if not name.startswith("_")}

    assert len(exported) == len(nfmp_client.testing.__all__)
    assert visible == exported


def test_engine_all_is_complete() -> None:
    """nfmp_client.engine lists every public name once; each class and function says it lives there."""
    exported = set(nfmp_client.engine.__all__)
    visible = {name for name in vars(nfmp_client.engine) if not name.startswith("_")}

    assert len(exported) == len(nfmp_client.engine.__all__)
    assert visible == exported
    for name in exported:
        obj = getattr(nfmp_client.engine, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"
            assert obj.__module__ == "nfmp_client.engine", name


@pytest.mark.parametrize("name", sorted(nfmp_client.testing.__all__))
def test_testing_documented_and_public_module(name: str) -> None:
    """Every class and function of the test kit has a docstring and claims nfmp_client.testing."""
    obj = getattr(nfmp_client.testing, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        assert inspect.getdoc(obj), f"{name} has no docstring"
        assert obj.__module__ == "nfmp_client.testing"
        if inspect.isclass(obj) and attrs.has(obj):
            assert all(field.kw_only for field in attrs.fields(obj))


def test_version() -> None:
    """The package has a version string."""
    assert isinstance(nfmp_client.__version__, str)
    assert nfmp_client.__version__
