"""``nfmp-client``: the state commands and usage errors (no broker); ``watch`` is in integration/test_cli_watch."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from nfmp_client import Baseline, StateStore
from nfmp_client._cli import EXIT_FAILED, EXIT_NOTHING, EXIT_OK, EXIT_USAGE, main

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    StateStore(tmp_path).save(
        Baseline(
            client_id="oss1@1",
            topic="5620-SAM-topic-xml",
            selector="ALA_clientId in ('oss1@1','')",
            durable=True,
            sys_start_time="1795621783680",
            resync_epoch=4,
            in_sync=True,
        ),
        now=NOW,
    )
    return tmp_path


def test_state_show(saved: Path) -> None:
    """The baseline, one field a line, under its file's path."""
    code, out = run("state", "show", "--client-id", "oss1@1", "--state-dir", str(saved))

    assert code == EXIT_OK
    assert out.splitlines()[0].endswith("oss1@1.state.json")
    assert "  sys_start_time     1795621783680" in out
    assert "  resync_epoch       4" in out


def test_state_show_json(saved: Path) -> None:
    """--json: one object, times in ISO 8601."""
    code, out = run("state", "show", "--client-id", "oss1@1", "--state-dir", str(saved), "--json")

    assert code == EXIT_OK
    values = json.loads(out)
    assert values["resync_epoch"] == 4
    assert values["saved_at"] == NOW.isoformat()


def test_state_show_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No file: exit 3, said on stderr."""
    code, out = run("state", "show", "--client-id", "oss9@1", "--state-dir", str(tmp_path))

    assert (code, out) == (EXIT_NOTHING, "")
    assert "no state for oss9@1" in capsys.readouterr().err


def test_state_show_corrupt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unusable file: exit 1 with the typed error's message."""
    StateStore(tmp_path).path_for("oss1@1").write_text("{")

    code, _ = run("state", "show", "--client-id", "oss1@1", "--state-dir", str(tmp_path))

    assert code == EXIT_FAILED
    assert "not valid JSON" in capsys.readouterr().err


def test_state_reset(saved: Path) -> None:
    """reset deletes the file (the next start resyncs), and says when there was none."""
    code, out = run("state", "reset", "--client-id", "oss1@1", "--state-dir", str(saved))
    assert (code, out.strip().endswith("removed")) == (EXIT_OK, True)
    assert StateStore(saved).load("oss1@1") is None

    code, out = run("state", "reset", "--client-id", "oss1@1", "--state-dir", str(saved))
    assert (code, out.strip().endswith("there was none")) == (EXIT_OK, True)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["watch", "--client-id", "oss1@1"],  # no --server
        ["state", "show"],  # no --client-id
        ["nonsense"],
    ],
)
def test_usage_errors(argv: list[str]) -> None:
    """Missing or unknown arguments: exit 2 (argparse's message on stderr)."""
    assert run(*argv)[0] == EXIT_USAGE


def test_invalid_client_id_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A client id without @: exit 2 with the configuration's message, before connecting anywhere."""
    code, _ = run("watch", "--server", "127.0.0.1:1", "--client-id", "oss1")

    assert code == EXIT_USAGE
    assert "name@ID" in capsys.readouterr().err
