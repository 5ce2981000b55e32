"""Handler: a misspelled callback, which the client would silently never call, warns when the class is made."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import ClassVar

import pytest

from nfmp_client import ConnectionLost, DataEvent, Handler, HandlerWarning, ResyncRequest

ROOT = Path(__file__).resolve().parent.parent
CALLBACKS = sorted(name for name in vars(Handler) if name.startswith("on_"))


def test_a_misspelled_callback_warns_and_names_the_real_one() -> None:
    """The issue's case: ``on_resync_requested`` is never called; the warning says ``on_resync_required``."""
    with pytest.warns(HandlerWarning) as caught:

        class Oss(Handler):
            def on_resync_requested(self, request: ResyncRequest) -> None:
                pass

    assert len(caught) == 1
    message = str(caught[0].message)
    assert "Oss.on_resync_requested is not a Handler callback" in message
    assert "did you mean on_resync_required?" in message
    assert "Oss.own_methods" in message
    assert caught[0].filename == __file__  # points at the class statement, not into the package


def test_a_name_like_no_callback_lists_them_all() -> None:
    """With nothing close to suggest, the warning lists every callback."""
    with pytest.warns(HandlerWarning, match="the callbacks are on_connection_lost, ") as caught:

        class Oss(Handler):
            def on_zebra_crossing(self) -> None:
                pass

    assert all(name in str(caught[0].message) for name in CALLBACKS)


def test_each_unknown_method_warns_once() -> None:
    """Two misspellings, two warnings, each with its own suggestion."""
    with pytest.warns(HandlerWarning) as caught:

        class Oss(Handler):
            def on_events(self, event: DataEvent) -> None:
                pass

            def on_conection_lost(self, cause: ConnectionLost) -> None:
                pass

    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert ".Oss.on_conection_lost is not a Handler callback" in messages[0]
    assert "did you mean on_connection_lost?" in messages[0]
    assert ".Oss.on_events is not a Handler callback" in messages[1]
    assert "did you mean on_event?" in messages[1]


def test_a_misspelling_from_a_mixin_warns_too() -> None:
    """A method the handler inherits from a class that is not a Handler is never called either."""

    class Callbacks:
        def on_undeliverables(self) -> None:
            pass

    with pytest.warns(HandlerWarning, match="did you mean on_undeliverable"):

        class Oss(Callbacks, Handler):
            pass


def test_the_real_callbacks_and_other_names_do_not_warn() -> None:
    """Every callback, private and non-``on_`` methods, and an attribute that is not a method are fine."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Oss(Handler):
            on_count = 0  # not a method

            def on_event(self, event: DataEvent) -> None:
                pass

            def on_resync_required(self, request: ResyncRequest) -> None:
                pass

            def _on_private(self) -> None:
                pass

            def handle(self) -> None:
                pass

        class Child(Oss):
            def on_connection_lost(self, cause: ConnectionLost) -> None:
                pass

    assert Child.on_count == 0


def test_own_methods_opt_out_and_are_inherited() -> None:
    """A method of the application's own, listed in own_methods, does not warn; nor in subclasses."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        class Oss(Handler):
            own_methods: ClassVar[Collection[str]] = ("on_startup",)

            def on_startup(self) -> None:
                pass

        class Child(Oss):
            own_methods = "on_shutdown"  # one name as a plain string counts as that name

            def on_shutdown(self) -> None:
                pass

    with pytest.warns(HandlerWarning, match="GrandChild.on_evnt"):

        class GrandChild(Child):
            def on_evnt(self) -> None:
                pass


@pytest.mark.parametrize(
    "path",
    sorted(
        p.relative_to(ROOT).as_posix()
        for p in [*(ROOT / "examples").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
        if "(Handler)" in p.read_text()
    ),
)
def test_the_projects_own_handlers_do_not_warn(path: str) -> None:
    """The examples' and benchmarks' handlers use only real callbacks (pytest turns warnings into errors)."""
    spec = importlib.util.spec_from_file_location(f"_handler_check_{Path(path).stem}", ROOT / path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HandlerWarning)
        spec.loader.exec_module(module)


def test_handler_warning_is_a_user_warning() -> None:
    """Filters for UserWarning catch it; a dedicated class lets an application filter it alone."""
    assert issubclass(HandlerWarning, UserWarning)
