# Shared by scripts/demo and scripts/test (sourced, not run): make this machine able to run the project.
# Installs only what is missing, every time it is missing: Debian packages (python3-venv), the virtualenv,
# the package with the requested extras. ActiveMQ itself is installed by scripts/broker.
# Environment: NFMP_VENV (default <repo>/.venv), NFMP_PYTHON (default python3).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${NFMP_VENV:-$REPO/.venv}
PYTHON=${NFMP_PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo -n "$@" || die "needs root: sudo $*"
    else die "needs root (no sudo here): $*"
    fi
}

# apt_install PACKAGE...: install the Debian packages that are not installed yet.
apt_install() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and this is not a Debian machine: install them"
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_python() {
    command -v "$PYTHON" >/dev/null 2>&1 || apt_install python3
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || die "$("$PYTHON" --version 2>&1) is too old: nfmp_client needs Python 3.10 or newer (set NFMP_PYTHON)"
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
}

# ensure_venv EXTRAS: a working virtualenv in $VENV with the package installed (editable) with EXTRAS
# (comma-separated, may be empty). Reinstalls only when setup.cfg, pyproject.toml or EXTRAS changed.
ensure_venv() {
    local extras=$1 stamp wanted
    ensure_python
    if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        say "creating the virtualenv $VENV"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
    stamp=$VENV/.nfmp-installed
    wanted=$(cat "$REPO/setup.cfg" "$REPO/pyproject.toml" | sha256sum | cut -c1-16)-$extras
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] || ! "$VENV/bin/python" -c 'import nfmp_client' 2>/dev/null; then
        say "installing nfmp_client${extras:+ [$extras]} into $VENV"
        "$VENV/bin/python" -m pip install -q -e "$REPO${extras:+[$extras]}"
        echo "$wanted" > "$stamp"
    fi
    PY=$VENV/bin/python
}
