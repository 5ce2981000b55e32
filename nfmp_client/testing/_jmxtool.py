"""How to run AmqAdmin.java, the small JMX program that closes connections and removes subscriptions.

Standard library only: ``nfmp-broker`` (``_broker.py``, which ``scripts/broker`` runs with the system Python,
where nfmp_client's dependencies are not installed) loads this file by path.

Java's source-file mode compiles the program on every call (about 2 s); a compiled copy is cached per source
digest in ``~/.cache/nfmp-broker`` (``$XDG_CACHE_HOME``), which brings a call down to about 0.3 s.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["ADMIN_SOURCE", "admin_command", "cache_root"]

ADMIN_SOURCE = Path(__file__).resolve().parent / "AmqAdmin.java"
"""The program's source, shipped with the package."""


def cache_root() -> Path | None:
    """Return the folder that holds compiled copies, or None without a home directory."""
    try:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nfmp-broker"
    except RuntimeError:
        return None


def admin_command(
    java: str, *, jms_api_jar: Path | None = None, timeout: float = 120.0, cache: Path | None = None
) -> list[str]:
    """Return the command line (without AmqAdmin's own arguments) that runs AmqAdmin with *java*.

    A compiled copy is used (compiled now if needed) where the cache folder is writable; otherwise the
    source file, which also shows the compiler's complaint if there is one.

    Args:
        java: The java binary (11 or newer: source-file mode).
        jms_api_jar: A JMS API jar for the class path, so that a JMSException cause ("Durable consumer is in
            use") can be shown; None: without it (the cause's class name is shown instead). The program
            itself needs only the JDK.
        timeout: Seconds the compilation may take.
        cache: The folder for compiled copies; cache_root() when None.
    """
    jms = [str(jms_api_jar)] if jms_api_jar is not None else []
    source_mode = [java, *(["-cp", *jms] if jms else []), str(ADMIN_SOURCE)]
    root = cache or cache_root()
    if root is None:
        return source_mode
    digest = hashlib.sha256(ADMIN_SOURCE.read_bytes()).hexdigest()[:16]
    compiled = root / f"amqadmin-{digest}"
    if not (compiled / "AmqAdmin.class").exists():
        try:
            root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".amqadmin-", dir=root))
        except OSError:
            return source_mode
        # javac through java itself: the jdk.compiler module is there whenever source-file mode works
        javac = [java, "-m", "jdk.compiler/com.sun.tools.javac.Main", "-d", str(staging)]
        try:
            result = subprocess.run(  # fixed program, our own source file
                [*javac, str(ADMIN_SOURCE)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            if result.returncode == 0:
                os.rename(staging, compiled)  # atomic; fails if a concurrent call got there first: fine
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if not (compiled / "AmqAdmin.class").exists():
            return source_mode
    return [java, "-cp", ":".join([str(compiled), *jms]), "AmqAdmin"]
