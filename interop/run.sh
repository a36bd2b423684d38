#!/usr/bin/env bash
# Interop suites against a real `updraft` binary: Python `websockets` (pytest)
# and Node `ws` (node --test). Each test module starts its own server on
# 127.0.0.1:0 with a fresh data dir and stops it at the end.
#
# Builds nothing: pass the binary as UPDRAFT_BIN (default target/debug/updraft,
# relative to the repository root), e.g.
#   cargo build -p updraft-server && UPDRAFT_BIN=$PWD/target/debug/updraft bash interop/run.sh
# Installs the suites' pinned packages when they are missing. Runs both suites
# and exits non-zero if either fails.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=conformance/lib.sh
source "$root/conformance/lib.sh"
find_updraft interop "$root"
export UPDRAFT_BIN="$bin"
cd "$root"

# ---- install what is missing -------------------------------------------------
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
if ! python3 - interop/python/requirements.txt <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, pinned = line.partition("==")
    try:
        if version(name.strip()) != pinned.strip():
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
then
  echo "== pip install -r interop/python/requirements.txt"
  # A Debian-managed Python refuses plain installs (PEP 668); retry past that.
  python3 -m pip install -q -r interop/python/requirements.txt ||
    python3 -m pip install -q --break-system-packages -r interop/python/requirements.txt ||
    { echo "interop: pip install failed" >&2; exit 2; }
fi

npm_ready interop/node interop

# ---- run ----------------------------------------------------------------------
status=0
echo "== Python websockets interop (pytest)"
python3 -m pytest -q interop/python || status=1

echo "== Node ws interop (node --test)"
# Each test also sets its own time limit.
node_test_flags 30000
node "${node_flags[@]}" interop/node/ || status=1

if ((status)); then echo "interop: FAILED" >&2; else echo "interop: all passed"; fi
exit "$status"
