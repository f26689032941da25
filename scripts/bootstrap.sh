#!/usr/bin/env bash
# Idempotent set-up: make sure `uv` is available, then install the project's
# locked dependencies (dev group included) into ./.venv with `uv sync --frozen`.
#
# Works on a fresh Debian machine that only has python3 (>= 3.11), make and git.
# uv is looked up on PATH, then in .venv-tools/bin; if absent it is installed into
# .venv-tools, by (1) venv + pip, (2) the same after `apt-get install python3-venv`
# (root only), (3) downloading the uv wheel from PyPI with python's stdlib.
#
# Environment knobs:
#   PYTHON=python3      interpreter used for .venv-tools and for a new .venv
#   BOOTSTRAP_VERBOSE=1 show the output of every step
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLS="$ROOT/.venv-tools"
PYTHON="${PYTHON:-python3}"
VERBOSE="${BOOTSTRAP_VERBOSE:-0}"
LOG="$(mktemp "${TMPDIR:-/tmp}/dompet-bootstrap.XXXXXX")"
trap 'rm -f "$LOG"' EXIT

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    if [ -s "$LOG" ]; then
        log "last output:"
        tail -n 40 "$LOG" | sed 's/^/    /' >&2
    fi
    exit 1
}
# Run a command, hiding its output unless it fails (or BOOTSTRAP_VERBOSE=1).
quiet() {
    if [ "$VERBOSE" = 1 ]; then
        "$@" 2>&1 | tee -a "$LOG" >&2
        return "${PIPESTATUS[0]}"
    fi
    "$@" >>"$LOG" 2>&1
}

# --- python -----------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; install Python >= 3.11 (apt-get install python3)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
    die "Python >= 3.11 required, '$PYTHON' is $("$PYTHON" -c 'import platform; print(platform.python_version())')"
PYTHON_ABS="$("$PYTHON" -c 'import sys; print(sys.executable)')"

# --- uv ---------------------------------------------------------------------
UV=""
uv_works() { [ -n "$1" ] && "$1" --version >/dev/null 2>&1; }

find_uv() {
    local candidate
    candidate="$(command -v uv 2>/dev/null || true)"
    if uv_works "$candidate"; then UV="$candidate"; return 0; fi
    candidate="$TOOLS/bin/uv"
    if [ -x "$candidate" ] && uv_works "$candidate"; then UV="$candidate"; return 0; fi
    return 1
}

install_uv_with_pip() {
    rm -rf "$TOOLS"
    quiet "$PYTHON" -m venv "$TOOLS" || return 1
    quiet "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check uv || return 1
    uv_works "$TOOLS/bin/uv"
}

pkg_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

install_venv_package() {
    [ "$(id -u)" = 0 ] || return 1
    command -v apt-get >/dev/null 2>&1 || return 1
    local ver pkgs=()
    ver="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    # python3.X-venv is what actually ships ensurepip; python3-venv pulls in the
    # default one. Nothing to do (and no upgrades) when they are already installed.
    pkg_installed python3-venv || pkgs+=(python3-venv)
    if ! pkg_installed "python${ver}-venv" && apt-cache show "python${ver}-venv" >/dev/null 2>&1; then
        pkgs+=("python${ver}-venv")
    fi
    [ "${#pkgs[@]}" -gt 0 ] || return 1
    log "installing ${pkgs[*]} with apt-get"
    quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" &&
        return 0
    quiet apt-get update || return 1
    quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
}

install_uv_from_wheel() {
    rm -rf "$TOOLS"
    quiet "$PYTHON" -m venv --without-pip "$TOOLS" || mkdir -p "$TOOLS/bin"
    mkdir -p "$TOOLS/bin"
    quiet "$PYTHON" - "$TOOLS/bin" <<'PY' || return 1
"""Download the uv wheel matching this machine from PyPI and extract the binary."""

import hashlib
import io
import json
import os
import platform
import stat
import sys
import urllib.parse
import urllib.request
import zipfile

dest_dir = sys.argv[1]
machine = platform.machine().lower()
arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(machine)
if arch is None:
    sys.exit(f"unsupported machine architecture: {machine}")
libc = platform.libc_ver()[0]
tag = "manylinux" if libc in ("glibc", "") else "musllinux"

index_url = "https://pypi.org/pypi/uv/json"
with urllib.request.urlopen(index_url, timeout=60) as resp:
    meta = json.load(resp)
candidates = [
    f
    for f in meta["urls"]
    if f["packagetype"] == "bdist_wheel"
    and tag in f["filename"]
    and f["filename"].endswith(f"_{arch}.whl")
]
if not candidates:
    sys.exit(f"no {tag} {arch} wheel for uv {meta['info']['version']} on PyPI")
wheel = candidates[0]
print(f"downloading {wheel['filename']}")
wheel_url = urllib.parse.urljoin(index_url, wheel["url"])  # mirrors may give relative URLs
with urllib.request.urlopen(wheel_url, timeout=300) as resp:
    data = resp.read()
expected = wheel.get("digests", {}).get("sha256")
if expected and hashlib.sha256(data).hexdigest() != expected:
    sys.exit(f"sha256 mismatch for {wheel['filename']}")
with zipfile.ZipFile(io.BytesIO(data)) as zf:
    members = [n for n in zf.namelist() if n.endswith(".data/scripts/uv")]
    if not members:
        sys.exit(f"no uv binary inside {wheel['filename']}")
    target = os.path.join(dest_dir, "uv")
    tmp = target + ".tmp"
    with zf.open(members[0]) as src, open(tmp, "wb") as out:
        out.write(src.read())
    os.chmod(tmp, os.stat(tmp).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, target)
print(f"installed uv {meta['info']['version']} to {target}")
PY
    uv_works "$TOOLS/bin/uv"
}

if ! find_uv; then
    log "uv not found; installing it into .venv-tools"
    if install_uv_with_pip; then
        :
    elif install_venv_package && install_uv_with_pip; then
        :
    elif install_uv_from_wheel; then
        :
    else
        die "could not install uv (tried: venv+pip, apt-get python3-venv, PyPI wheel download)"
    fi
    UV="$TOOLS/bin/uv"
    log "using $("$UV" --version) from $UV"
fi

# --- project environment ----------------------------------------------------
# Never let uv download a Python: use the system interpreter.
export UV_PYTHON_DOWNLOADS=never
export UV_PROJECT_ENVIRONMENT="$ROOT/.venv"
# When .venv already works, let uv keep using its interpreter (so an existing venv
# is not recreated); otherwise build it from $PYTHON.
if ! "$ROOT/.venv/bin/python" -c '' >/dev/null 2>&1; then
    export UV_PYTHON="${UV_PYTHON:-$PYTHON_ABS}"
fi

quiet "$UV" sync --frozen --dev ||
    die "'uv sync --frozen' failed (is uv.lock in sync with pyproject.toml? the lead runs 'uv lock')"
[ -x "$ROOT/.venv/bin/python" ] || die ".venv/bin/python missing after uv sync"
