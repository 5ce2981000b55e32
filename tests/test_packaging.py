"""Packaging: where nfmp-broker finds java and ActiveMQ, what the sdist and the wheel hold, and the kit of a pip
user (the wheel in a clean virtualenv outside the repository: nfmp-broker, nfmp-sim and an example)."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from nfmp_client.testing import _broker
from nfmp_client.testing._broker import (
    BrokerError,
    default_data_dir,
    ensure_installed,
    find_home,
    find_installation,
    find_java,
)
from nfmp_client.testing._jmxtool import ADMIN_SOURCE, admin_command
from tests.conftest import free_ports

REPO_ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = REPO_ROOT / "nfmp_client" / "testing" / "_broker.py"
JMX_TOOL = REPO_ROOT / "nfmp_client" / "testing" / "_jmxtool.py"
BROKER_CONFIGURATION = ("activemq.xml", "log4j.properties", "log4j2.properties")
COMMAND_TIMEOUT = 300.0  # seconds: a build or a pip install may download (setuptools, the dependencies)


# ====================================================================================================
# Where java and ActiveMQ are found (no broker, no java run)
# ====================================================================================================


def make_home(root: Path, *jars: str) -> Path:
    """An ActiveMQ installation in `root`: bin/activemq.jar and `jars` (paths under lib/), all empty files."""
    for name in ("bin/activemq.jar", *(f"lib/{jar}" for jar in jars)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No known place holds ActiveMQ, the shared jar folder is empty, no variable names an installation."""
    monkeypatch.setattr(_broker, "KNOWN_HOMES", ())
    monkeypatch.setattr(_broker, "KNOWN_HOME_GLOBS", (tmp_path / "opt", "apache-activemq-*"))
    monkeypatch.setattr(_broker, "SHARE_JAVA", tmp_path / "share-java")
    for name in _broker.HOME_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "share-java").mkdir()
    return tmp_path


@pytest.fixture
def java_home(tmp_path: Path) -> Path:
    """A JAVA_HOME whose bin/java is an executable file (never run)."""
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\nexit 1\n")
    java.chmod(0o755)
    return java.parent.parent


def test_an_unpacked_apache_distribution_needs_no_extra_jars(nowhere: Path, java_home: Path) -> None:
    """Apache's layout (xstream and jettison in lib/optional/) named by NFMP_ACTIVEMQ_HOME: nothing is added to
    the broker's class path, and AmqAdmin gets the distribution's JMS API jar."""
    home = make_home(
        nowhere / "apache-activemq-5.18.6",
        "activemq-broker-5.18.6.jar",
        "jakarta.jms-api-2.0.3.jar",
        "optional/xstream-1.4.20.jar",
        "optional/jettison-1.5.4.jar",
    )

    found = find_installation({"NFMP_ACTIVEMQ_HOME": str(home), "JAVA_HOME": str(java_home)})

    assert found.home == home
    assert found.run_jar == home / "bin" / "activemq.jar"
    assert found.java == str(java_home / "bin" / "java")
    assert found.extra_jars == ()
    assert found.jms_api_jar == home / "lib" / "jakarta.jms-api-2.0.3.jar"


def test_debian_layout_gets_xstream_and_jettison_from_the_shared_jars(nowhere: Path, java_home: Path) -> None:
    """Debian's layout (xstream and jettison installed in /usr/share/java, not in lib/): both are added to the
    broker's class path, without them advisories drop every STOMP subscriber."""
    home = make_home(nowhere / "debian", "activemq-broker.jar")
    share = nowhere / "share-java"
    for jar in ("xstream.jar", "jettison.jar", "geronimo-jms_1.1_spec.jar"):
        (share / jar).write_bytes(b"")

    found = find_installation({"ACTIVEMQ_HOME": str(home), "JAVA_HOME": str(java_home)})

    assert found.extra_jars == (share / "xstream.jar", share / "jettison.jar")
    assert found.jms_api_jar == share / "geronimo-jms_1.1_spec.jar"


def test_missing_jars_are_named(nowhere: Path, java_home: Path) -> None:
    """An installation without xstream or jettison anywhere: the error names both, and how to fix it."""
    home = make_home(nowhere / "bare", "activemq-broker.jar")

    with pytest.raises(BrokerError) as caught:
        find_installation({"NFMP_ACTIVEMQ_HOME": str(home), "JAVA_HOME": str(java_home)})

    message = str(caught.value)
    assert "xstream" in message
    assert "jettison" in message
    assert str(home / "lib") in message
    assert "NFMP_ACTIVEMQ_HOME" in message


def test_a_wrong_override_is_named_and_nothing_else_is_looked_at(
    nowhere: Path, java_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NFMP_ACTIVEMQ_HOME without bin/activemq.jar is an error naming it, even with ActiveMQ at a known place."""
    known = make_home(nowhere / "known", "optional/xstream-1.jar", "optional/jettison-1.jar")
    monkeypatch.setattr(_broker, "KNOWN_HOMES", (known,))
    empty = nowhere / "empty"
    empty.mkdir()

    with pytest.raises(BrokerError, match=f"NFMP_ACTIVEMQ_HOME={empty} has no bin/activemq.jar"):
        find_installation({"NFMP_ACTIVEMQ_HOME": str(empty), "JAVA_HOME": str(java_home)})
    assert find_installation({"JAVA_HOME": str(java_home)}).home == known


def test_nfmp_activemq_home_wins_over_activemq_home(nowhere: Path) -> None:
    """Both variables set: NFMP_ACTIVEMQ_HOME is used; ACTIVEMQ_HOME alone is used too."""
    ours, theirs = make_home(nowhere / "ours"), make_home(nowhere / "theirs")

    assert find_home({"NFMP_ACTIVEMQ_HOME": str(ours), "ACTIVEMQ_HOME": str(theirs)}) == ours
    assert find_home({"ACTIVEMQ_HOME": str(theirs)}) == theirs


def test_the_newest_unpacked_distribution_is_found(nowhere: Path) -> None:
    """Without a variable, of several distributions unpacked in /opt the newest version is used (5.18.10 is
    newer than 5.18.9 and 5.9.1)."""
    for version in ("5.9.1", "5.18.10", "5.18.9"):
        make_home(nowhere / "opt" / f"apache-activemq-{version}")

    assert find_home({}) == nowhere / "opt" / "apache-activemq-5.18.10"


def test_java_comes_from_java_home_else_from_path(java_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """JAVA_HOME's bin/java when there is one; else java on PATH; None without either."""
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: f"/on/path/{name}")

    assert find_java({"JAVA_HOME": str(java_home)}) == str(java_home / "bin" / "java")
    assert find_java({"JAVA_HOME": str(java_home / "bin")}) == "/on/path/java"  # no bin/java there
    assert find_java({}) == "/on/path/java"
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    assert find_java({}) is None


def forbid_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_elsewhere_than_debian_the_error_says_what_to_install(
    nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ActiveMQ and no apt-get: nothing is run, and the error names Java 11+, ActiveMQ Classic 5.x and the
    variable to point at it."""
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    forbid_processes(monkeypatch)

    with pytest.raises(BrokerError) as caught:
        ensure_installed()

    message = str(caught.value)
    assert "not a Debian or Ubuntu machine" in message
    assert "Java 11+" in message
    assert "ActiveMQ Classic 5.x" in message
    assert "NFMP_ACTIVEMQ_HOME" in message
    assert "java (" in message  # java itself is named as missing


def test_an_installation_chosen_by_a_variable_is_never_installed_with_apt(
    nowhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong NFMP_ACTIVEMQ_HOME on a Debian machine is an error naming it, not an apt-get install."""
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: f"/usr/bin/{name}")
    monkeypatch.setenv("NFMP_ACTIVEMQ_HOME", str(nowhere / "typo"))
    forbid_processes(monkeypatch)

    with pytest.raises(BrokerError, match=f"NFMP_ACTIVEMQ_HOME={nowhere / 'typo'} has no bin/activemq.jar"):
        ensure_installed()


def test_amqadmin_class_path_has_the_jms_jar_only_when_found(tmp_path: Path) -> None:
    """The compiled AmqAdmin runs with the JMS API jar on its class path when one was found, without it
    otherwise (no Debian path is assumed)."""
    digest = hashlib.sha256(ADMIN_SOURCE.read_bytes()).hexdigest()[:16]
    compiled = tmp_path / f"amqadmin-{digest}"
    compiled.mkdir()
    (compiled / "AmqAdmin.class").write_bytes(b"")  # already compiled: nothing is run
    jar = tmp_path / "jms.jar"

    assert admin_command("java", jms_api_jar=jar, cache=tmp_path) == [
        "java",
        "-cp",
        f"{compiled}:{jar}",
        "AmqAdmin",
    ]
    assert admin_command("java", cache=tmp_path) == ["java", "-cp", str(compiled), "AmqAdmin"]


def test_the_default_data_dir_is_the_users_state_dir(tmp_path: Path) -> None:
    """nfmp-broker keeps its broker under $XDG_STATE_HOME/nfmp-broker, else ~/.local/state/nfmp-broker."""
    assert default_data_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "nfmp-broker"
    assert default_data_dir({}) == Path.home() / ".local" / "state" / "nfmp-broker"


@pytest.mark.parametrize("path", [LAUNCHER, JMX_TOOL], ids=lambda p: p.name)
def test_the_launcher_imports_only_the_standard_library(path: Path) -> None:
    """nfmp-broker must run with the system python3 before any virtualenv exists: _broker.py and the
    _jmxtool.py it loads import nothing but the standard library (and nothing of their own package)."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import in {path.name}"
            imported.add((node.module or "").partition(".")[0])

    assert imported - {"__future__"} <= sys.stdlib_module_names


def test_the_launcher_runs_without_site_packages() -> None:
    """_broker.py run by its path with an isolated interpreter (no site-packages) shows its help."""
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(LAUNCHER), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "usage: nfmp-broker" in result.stdout
    assert "NFMP_ACTIVEMQ_HOME" in result.stdout


# ====================================================================================================
# The distributions (built with `python -m build`) and the kit from the wheel
# ====================================================================================================

# What a build of a copy of the working tree leaves out (local state, caches, build output).
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".broker",
    ".tox",
    "_build",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)


def run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run `command`; return its stdout and stderr; fail the test (showing them) on a non-zero exit code."""
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(command)} exited with {result.returncode}:\n{result.stdout}"
    return result.stdout


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel), built by `python -m build` from a copy of the working tree (the repository itself is
    left as it is: no egg-info, no build folder)."""
    root = tmp_path_factory.mktemp("dists")
    source = root / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_SOURCE)
    run([sys.executable, "-m", "build", "--outdir", str(root / "dist"), str(source)], cwd=root)
    (sdist,) = (root / "dist").glob("nfmp_client-*.tar.gz")
    (wheel,) = (root / "dist").glob("nfmp_client-*-py3-none-any.whl")
    return sdist, wheel


@pytest.mark.integration
@pytest.mark.slow
def test_the_wheel_holds_the_broker_configuration_and_the_license(dists: tuple[Path, Path]) -> None:
    """The wheel has nfmp-broker with its ActiveMQ configuration and AmqAdmin.java, the Apache License text,
    and a PEP 639 license expression."""
    _, wheel = dists
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (info,) = {name.split("/")[0] for name in names if name.split("/")[0].endswith(".dist-info")}
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        license_text = archive.read(f"{info}/licenses/LICENSE").decode()

    for name in BROKER_CONFIGURATION:
        assert f"nfmp_client/testing/activemq/{name}" in names
    assert {
        "nfmp_client/testing/_broker.py",
        "nfmp_client/testing/AmqAdmin.java",
        "nfmp_client/py.typed",
    } <= names
    assert "nfmp-broker = nfmp_client.testing._broker:main" in entry_points
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
    assert not [line for line in metadata.splitlines() if line.startswith("Classifier: License ::")]
    assert "Apache License" in license_text
    assert "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text


@pytest.mark.integration
@pytest.mark.slow
def test_the_sdist_holds_what_its_tests_need(dists: tuple[Path, Path]) -> None:
    """The sdist has the whole test suite (conftest, strategies, integration/, testing/), the scripts the
    tests run, the docs, the examples, the benchmarks and the license; no build output."""
    sdist, _ = dists
    with tarfile.open(sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}

    needed = {
        "LICENSE",
        "README.md",
        "setup.cfg",
        "pyproject.toml",
        "tox.ini",
        "ruff.toml",
        "tests/__init__.py",
        "tests/conftest.py",
        "tests/strategies.py",
        "tests/integration/__init__.py",
        "tests/integration/test_broker_script.py",
        "tests/testing/__init__.py",
        "tests/test_packaging.py",
        "scripts/broker",
        "docs/conf.py",
        "docs/index.rst",
        "docs/testing.rst",
        "examples/quickstart.py",
        "benchmarks/soak.py",
        *(f"nfmp_client/testing/activemq/{name}" for name in BROKER_CONFIGURATION),
    }
    assert needed <= names, sorted(needed - names)
    assert not [name for name in names if "_build/" in name or "__pycache__" in name or name.endswith(".pyc")]


@pytest.mark.integration
@pytest.mark.slow
def test_the_sdist_runs_its_own_tests(dists: tuple[Path, Path], tmp_path: Path) -> None:
    """Unpacked, the sdist's tests import the sdist's own package, every test module is collected, and its
    unit tests of the codec, the metrics and this file pass."""
    sdist, _ = dists
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (unpacked,) = tmp_path.glob("nfmp_client-*")
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    pytest_command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]

    imported = run([sys.executable, "-c", "import nfmp_client; print(nfmp_client.__file__)"], cwd=unpacked)
    assert imported.strip() == str(unpacked / "nfmp_client" / "__init__.py")
    collected = run([*pytest_command, "--collect-only", "tests"], cwd=unpacked, env=env)  # exit 2 on errors
    for module in ("tests/integration/test_broker_script.py", "tests/testing/test_simulator.py"):
        assert module in collected
    passed = run(
        [
            *pytest_command,
            "-m",
            "not integration",
            "tests/test_codec.py",
            "tests/test_metrics.py",
            "tests/test_packaging.py",
        ],
        cwd=unpacked,
        env=env,
    )
    assert " passed" in passed
    assert "failed" not in passed


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `condition()` every 0.2 s until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        time.sleep(0.2)


@pytest.fixture
def kit_venv(dists: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtualenv outside the repository with the wheel installed (pip's ordinary index for the
    dependencies); yields its bin/ folder."""
    _, wheel = dists
    home = tmp_path_factory.mktemp("kit")
    venv = home / "kit-venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=home)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=home)
    return venv / "bin"


@pytest.mark.integration
@pytest.mark.slow
def test_a_pip_user_runs_the_kit_from_the_wheel(kit_venv: Path, tmp_path: Path) -> None:
    """From the wheel alone, outside the repository: `nfmp-broker start`, `nfmp-sim serve`, the quickstart
    example against it (connected, a SystemInfoEvent, events), `nfmp-broker stop`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "VIRTUAL_ENV") and not name.startswith("NFMP_")
    }
    env["PATH"] = f"{kit_venv}{os.pathsep}{env.get('PATH', '')}"
    port, jmx_port, xmlapi_port, control_port = free_ports(4)
    data = tmp_path / "broker"
    control = f"http://127.0.0.1:{control_port}"
    example = tmp_path / "quickstart.py"
    shutil.copy(REPO_ROOT / "examples" / "quickstart.py", example)

    installed = run(
        [str(kit_venv / "python"), "-c", "import nfmp_client; print(nfmp_client.__file__)"], cwd=tmp_path
    )
    assert installed.startswith(str(kit_venv.parent)), installed
    broker = [
        str(kit_venv / "nfmp-broker"),
        "start",
        "--data",
        str(data),
        "--port",
        str(port),
        "--jmx-port",
        str(jmx_port),
    ]
    assert "ready: stomp://127.0.0.1" in run(broker, cwd=tmp_path, env=env)
    sim_log = tmp_path / "nfmp-sim.log"
    try:
        with sim_log.open("w") as log:
            sim = subprocess.Popen(
                [
                    *(str(kit_venv / "nfmp-sim"), "serve", "--port", str(port)),
                    *("--jmx-url", f"service:jmx:rmi:///jndi/rmi://127.0.0.1:{jmx_port}/jmxrmi"),
                    *("--xmlapi-port", str(xmlapi_port), "--control-port", str(control_port)),
                    *("--rate", "5", "--keepalive-interval", "1"),
                ],
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:

            def serving() -> bool:
                assert sim.poll() is None, f"nfmp-sim serve exited:\n{sim_log.read_text()}"
                status = subprocess.run(
                    [str(kit_venv / "nfmp-sim"), "status", "--control", control],
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
                return status.returncode == 0

            wait_for(serving, "nfmp-sim serve answers")
            watched = run(
                [
                    *(str(kit_venv / "python"), str(example), "--server", f"127.0.0.1:{port}"),
                    *("--client-id", "kit@1", "--seconds", "4"),
                ],
                cwd=tmp_path,
                env=env,
            )
        finally:
            sim.terminate()
            try:
                sim.wait(30)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait(10)
    finally:
        stopped = run([str(kit_venv / "nfmp-broker"), "stop", "--data", str(data)], cwd=tmp_path, env=env)

    assert f"up      127.0.0.1:{port}" in watched, watched
    assert "system  SystemInfoEvent" in watched, watched
    assert [line for line in watched.splitlines() if line.startswith("event ")], watched
    assert "broker stopped" in stopped
    assert "stopped after" in sim_log.read_text()
