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
find_updraft browser "$root"
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
init_work browser
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

wait_for_address ""
if ! urls_answer "http://$addr/healthz"; then
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
cd "$here"
run_node_tests 120000 "$@" browser.test.mjs reference.test.mjs
