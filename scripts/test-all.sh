#!/usr/bin/env bash
# Every test suite of Updraft: formatting and lints, Rust unit and integration tests (real server
# on loopback, and a real S3-compatible server for the blob store), bounded fuzzing, then the interop suites (Python `websockets`, Node `ws`) against the real binary.
# Installs what it needs that a fresh Debian 12 machine with Rust lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }
apt_missing=()
have python3 || apt_missing+=(python3 python3-pip)
have node || apt_missing+=(nodejs)
have npm || apt_missing+=(npm)
# -- application runtime (crates/updraft-runtime): sandboxes, git, the Python pack's venv --
have bwrap || apt_missing+=(bubblewrap)
have git || apt_missing+=(git)
have tar || apt_missing+=(tar)
have ssh-keygen || apt_missing+=(openssh-client)
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || apt_missing+=(python3 python3-venv)
# -- end application runtime --
# -- Qt Todo demo (examples/qt-todo) --
if ! { [[ -x /usr/lib/qt5/bin/qmake ]] && have g++ && have make &&
  [[ -n "$(find /usr/include -path '*/qt5/QtWebSockets/QWebSocket' -print -quit 2>/dev/null)" ]]; }; then
  apt_missing+=(qtbase5-dev libqt5websockets5-dev qt5-qmake g++ make)
fi
# -- end Qt Todo demo --
# -- browser (chromium) --
[[ -x /usr/bin/chromium ]] || apt_missing+=(chromium)
# -- end browser --
# -- the user guide's snippets (docs/tests/run.sh) read answers with jq --
have jq || apt_missing+=(jq)
# -- end guide --
# -- scale-out: the cluster tests start their own Redis and NATS servers (crates/updraft-server/tests/api/cluster.rs) --
have redis-server && have redis-cli || apt_missing+=(redis-server redis-tools)
{ [[ -x /usr/sbin/nats-server ]] || have nats-server; } || apt_missing+=(nats-server)
# -- end scale-out --
# -- qtc-cli (Ruby) --
# interop/qtc-cli runs the vendored Ruby qtc-cli with Debian's ruby, httpclient and commander.
have ruby && ruby -e 'require "httpclient"; require "commander"' 2>/dev/null ||
  apt_missing+=(ruby ruby-httpclient ruby-commander)
# -- end qtc-cli --
if ((${#apt_missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  # A machine whose earlier dpkg run was cut off refuses every install until it is finished.
  dpkg --configure -a
  apt_opts=(-o DPkg::Lock::Timeout=300 -y -qq)
  apt-get "${apt_opts[@]}" update && apt-get "${apt_opts[@]}" install "${apt_missing[@]}"
fi

# -- S3-compatible server (s3s-fs) that the blob store's tests run against --
# Built beside the lints (its own target directory), waited for before the tests.
s3s_install=
if [[ ! -x target/tools/bin/s3s-fs ]]; then
  echo "== installing s3s-fs under target/tools (in the background)"
  cargo install --quiet s3s-fs@0.14.1 --locked --features binary --root target/tools &
  s3s_install=$!
fi
# -- end s3s-fs --
# -- mdBook, which builds the user guide (docs/), installed the same way but at the lowest priority: it is needed
# only at the end, so it takes the cycles the lints and tests leave --
mdbook_install=
if [[ ! -x target/tools/bin/mdbook ]]; then
  echo "== installing mdbook under target/tools (in the background)"
  nice -n 19 cargo install --quiet mdbook@0.5.4 --locked --no-default-features --features search --root target/tools &
  mdbook_install=$!
fi
# -- end mdBook --

echo "== rustfmt, clippy"
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
[[ -z $s3s_install ]] || wait "$s3s_install"

echo "== Rust tests"
# The PostgreSQL store's tests use the machine's PostgreSQL (127.0.0.1:5432, trust auth): started if it stopped.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
# Timing ratios (tests marked ignored for that reason) run alone, so that no other test shares the cores.
cargo test -q -p updraft-server --test api -- --ignored --test-threads=1

# -- PostgreSQL store: the integration suite again, every server on a fresh PostgreSQL database --
# (tests/api/test_database.rs).
echo "== Rust integration tests on PostgreSQL"
pg_test=postgres://postgres@127.0.0.1:5432
drop_test_databases() {
  psql -q -h 127.0.0.1 -U postgres -d postgres -At \
    -c "SELECT datname FROM pg_database WHERE datname LIKE 'updraft\_test\_%' OR datname LIKE 'updraft\_%test\_%'" |
    while read -r db; do psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done
}
trap drop_test_databases EXIT
if cargo nextest --version >/dev/null 2>&1; then
  UPDRAFT_TEST_POSTGRES=$pg_test cargo nextest run -p updraft-server --test api --no-fail-fast
else
  UPDRAFT_TEST_POSTGRES=$pg_test cargo test -p updraft-server --test api --no-fail-fast
fi
# -- end PostgreSQL store --

# Coverage-guided fuzzing of the frame reader and the query parser, bounded (scripts/fuzz.sh; FUZZ_SECONDS=0 skips).
if [[ ${FUZZ_SECONDS:-30} != 0 ]]; then
  echo "== fuzz (${FUZZ_SECONDS:-30}s a target)"
  FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash scripts/fuzz.sh
fi

echo "== interop"
cargo build --quiet -p updraft-server
UPDRAFT_BIN="$PWD/target/debug/updraft" bash interop/run.sh

# -- Qt Todo demo (examples/qt-todo) --
echo "== Qt Todo demo end-to-end"
UPDRAFT_BIN="$PWD/target/debug/updraft" bash examples/qt-todo/e2e.sh
# -- end Qt Todo demo --

# -- conformance (npm qtc SDK) --
# Needs root: HTTPS on 127.0.0.1:443 and the suite's host names in /etc/hosts (conformance/run.sh).
echo "== conformance (npm qtc SDK)"
UPDRAFT_BIN="$PWD/target/debug/updraft" bash conformance/run.sh
# -- end conformance --

# -- qtc-cli (Ruby) --
# The original Ruby qtc-cli (qtc-sdk 0.5.0, vendored) drives MAR and MDB on the real binary (interop/qtc-cli/run.sh).
echo "== qtc-cli (Ruby)"
UPDRAFT_BIN="$PWD/target/debug/updraft" bash interop/qtc-cli/run.sh
# -- end qtc-cli --

# -- browser (chromium) --
# Headless Chromium on a second origin calls EDS and MWS cross-origin (conformance/browser/run.sh).
echo "== browser (chromium)"
UPDRAFT_BIN="$PWD/target/debug/updraft" bash conformance/browser/run.sh
# -- end browser --

# -- the user guide: its snippets against the real binary, and the book built --
echo "== user guide (docs/)"
[[ -z $mdbook_install ]] || wait "$mdbook_install"
UPDRAFT_BIN="$PWD/target/debug/updraft" bash docs/tests/run.sh
# -- end guide --

echo "== all suites passed: Rust, fuzz, interop, Qt demo, npm SDK conformance, browser, user guide"
