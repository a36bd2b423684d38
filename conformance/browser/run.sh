#!/usr/bin/env bash
# Browser page test: headless Chromium (Debian package `chromium`, driven by npm `playwright-core`) loads a page
# from a second origin whose plain JavaScript calls Updraft's EDS and MWS cross-origin (fetch with CORS
# preflights, a WebSocket) and receives an EDS change and an MWS message on the socket.
#
# Starts one `updraft serve` on a free loopback port, runs `node --test` over conformance/browser/, and prints
# `browser: N passed, M failed`. Needs no root. Builds nothing: pass the binary as UPDRAFT_BIN (default
# target/debug/updraft), e.g.
#   cargo build -p updraft-server && UPDRAFT_BIN=$PWD/target/debug/updraft bash conformance/browser/run.sh
# CHROMIUM names another browser binary (default /usr/bin/chromium). Extra arguments go to `node --test`.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=conformance/lib.sh
source "$here/../lib.sh"
bin="${UPDRAFT_BIN:-target/debug/updraft}"
case "$bin" in
  /*) ;;
  *) if [[ -e "$PWD/$bin" ]]; then bin="$PWD/$bin"; else bin="$root/$bin"; fi ;;
esac
if [[ ! -x "$bin" ]]; then
  echo "browser: updraft binary not found at $bin (build it with 'cargo build -p updraft-server' or set UPDRAFT_BIN)" >&2
  exit 2
fi
chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium_bin" ]]; then
  echo "browser: Chromium not found at $chromium_bin; install it with 'apt-get install -y chromium' (scripts/test-all.sh does) or set CHROMIUM" >&2
  exit 2
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "browser: node and npm are needed; install them with 'apt-get install -y nodejs npm'" >&2
  exit 2
fi

# ---- the suite's packages (npm ci when what is installed differs from the lock file) --------------------
npm_ready "$here" browser

# ---- the server ---------------------------------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/updraft-browser.XXXXXX")"
server_pid=""
cleanup() {
  # Only the server this script started, by its pid (the test closes its own browser and servers).
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail_setup() {
  echo "browser: $*" >&2
  if [[ -s "$work/server.log" ]]; then echo "--- server log (tail)" >&2; tail -n 20 "$work/server.log" >&2; fi
  echo "browser: 0 passed, 1 failed"
  exit 1
}

token() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
admin_email=browser@example.com
admin_password="browser-$(token)"
security_token="$(token)"

mkdir "$work/data"
# A clean environment for the server: nothing inherited from the caller's UPDRAFT_*, EDS_* or APP_DOMAIN
# (nor RUST_BACKTRACE, which buries a startup error under a backtrace).
env -u RUST_BACKTRACE -u EDS_BACKEND_ID -u EDS_URI -u EDS_PERMISSIONS -u APP_DOMAIN -u UPDRAFT_CONFIG -u UPDRAFT_LISTEN \
  -u UPDRAFT_TLS_LISTEN -u UPDRAFT_TLS_CERT -u UPDRAFT_TLS_KEY -u UPDRAFT_DATA_DIR -u UPDRAFT_ADMIN_TOKEN \
  -u UPDRAFT_MAX_PENDING_SOCKETS -u UPDRAFT_SOCKET_URI_TTL_SECS \
  ACCESS_CONTROL=none SECURITY_TOKEN="$security_token" RUST_LOG=info \
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" \
  --admin-email "$admin_email" --admin-password "$admin_password" \
  --log-format json >/dev/null 2>"$work/server.log" &
server_pid=$!

# Port 0: read the address the server logs.
addr=""
for _ in $(seq 100); do
  addr="$(grep -m1 -o '"local_addr":"[^"]*"' "$work/server.log" 2>/dev/null | cut -d'"' -f4)"
  [[ -n "$addr" ]] && break
  kill -0 "$server_pid" 2>/dev/null || fail_setup "updraft exited at startup"
  sleep 0.1
done
[[ -n "$addr" ]] || fail_setup "updraft did not log its address within 10 s"
if ! node -e '
  (async () => {
    for (let i = 0; i < 100; i++) {
      try { if ((await fetch(process.argv[1])).ok) return; } catch {}
      await new Promise((r) => setTimeout(r, 100));
    }
    process.exit(1);
  })();' "http://$addr/healthz"
then
  fail_setup "GET http://$addr/healthz never answered"
fi
echo "== updraft on http://$addr; $("$chromium_bin" --version 2>/dev/null | head -n1)"

export BROWSER_API_BASE="http://$addr"
export BROWSER_SECURITY_TOKEN="$security_token"
export BROWSER_ADMIN_EMAIL="$admin_email"
export BROWSER_ADMIN_PASSWORD="$admin_password"
export BROWSER_CHROMIUM="$chromium_bin"

# ---- run -------------------------------------------------------------------------------------------------------
echo "== browser page test (headless Chromium, node --test)"
node_flags=(--test --test-reporter=spec --test-reporter-destination=stdout
  --test-reporter=tap --test-reporter-destination="$work/results.tap")
# Whole-test time limit where this Node has the flag (20.11+); each test also sets its own.
if node --test-timeout=1 -e 0 >/dev/null 2>&1; then node_flags+=(--test-timeout=120000); fi
(cd "$here" && node "${node_flags[@]}" "$@" browser.test.mjs)
status=$?

count() { grep -E "^# $1 [0-9]+$" "$work/results.tap" 2>/dev/null | tail -n1 | awk '{ print $3 }'; }
passed="$(count pass)"
failed="$(count fail)"
cancelled="$(count cancelled)"
passed="${passed:-0}"
failed=$((${failed:-0} + ${cancelled:-0}))
if ((status != 0 && failed == 0)); then failed=1; fi # node failed outside any test (e.g. a hook or the file)
if ((failed)); then
  echo "--- server log (tail)"
  tail -n 20 "$work/server.log"
fi
echo "browser: $passed passed, $failed failed"
if ((failed || passed == 0)); then exit 1; fi
exit 0
