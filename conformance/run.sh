#!/usr/bin/env bash
# Conformance of Updraft with the official Node SDK, npm `qtc` 0.6.10: application code written for
# Qt Cloud Services must work with nothing changed but its addresses.
#
# The SDK sends EDS (and MAR, platform) requests to https://<host name>:443 whatever the address says,
# so this runner needs root: it serves HTTPS on 127.0.0.1:443 and maps the suite's host names to
# 127.0.0.1 in /etc/hosts (adding the entry only if a name is missing). It makes a throwaway CA and
# certificate (`updraft cert`), trusted through NODE_EXTRA_CA_CERTS, starts one `updraft serve` with a
# plain listener on a free port and the TLS one on 443, runs `node --test` over conformance/node/, and
# prints `conformance: N passed, M failed, K skipped`.
#
# Builds nothing: pass the binary as UPDRAFT_BIN (default target/debug/updraft), e.g.
#   cargo build -p updraft-server && UPDRAFT_BIN=$PWD/target/debug/updraft bash conformance/run.sh
# Extra arguments go to `node --test`, e.g. `--test-name-pattern=usergroup`.
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=conformance/lib.sh
source "$root/conformance/lib.sh"
find_updraft conformance "$root"
cd "$root"

names=(eds.localtest mws.localtest api.localtest mar.localtest)
suite=conformance/node

# ---- host names ----------------------------------------------------------------------------------------
missing=()
for name in "${names[@]}"; do
  addr="$(getent ahostsv4 "$name" 2>/dev/null | awk '{ print $1; exit }')"
  if [[ -z "$addr" ]]; then
    missing+=("$name")
  elif [[ "$addr" != 127.0.0.1 ]]; then
    echo "conformance: $name resolves to $addr, not 127.0.0.1; fix /etc/hosts" >&2
    exit 2
  fi
done
if ((${#missing[@]})); then
  if ! printf '127.0.0.1 %s # updraft conformance\n' "${missing[*]}" >>/etc/hosts 2>/dev/null; then
    echo "conformance: cannot add '127.0.0.1 ${missing[*]}' to /etc/hosts (run as root, or add it yourself)" >&2
    exit 2
  fi
  echo "== /etc/hosts: added 127.0.0.1 ${missing[*]}"
fi

# ---- the suite's packages --------------------------------------------------------------------------------
npm_ready "$suite" conformance

# ---- certificates and the server ---------------------------------------------------------------------------
init_work conformance
count_skipped=1

cert_args=(cert --dir "$work/certs")
for name in "${names[@]}"; do cert_args+=(--name "$name"); done
"$bin" "${cert_args[@]}" >/dev/null || fail_setup "updraft cert failed"

admin_email=conformance@example.com
admin_password="conformance-$(token)"
security_token="$(token)"
server_admin_token="$(token)"

mkdir "$work/data"
# A clean environment for the server: nothing inherited from the caller's UPDRAFT_*, EDS_* or APP_DOMAIN
# (nor RUST_BACKTRACE, which buries a startup error such as a taken port under a backtrace).
env -u RUST_BACKTRACE -u EDS_BACKEND_ID -u EDS_URI -u EDS_PERMISSIONS -u APP_DOMAIN -u UPDRAFT_CONFIG -u UPDRAFT_LISTEN \
  -u UPDRAFT_TLS_LISTEN -u UPDRAFT_DATA_DIR -u UPDRAFT_MAX_PENDING_SOCKETS -u UPDRAFT_SOCKET_URI_TTL_SECS \
  ACCESS_CONTROL=none SECURITY_TOKEN="$security_token" UPDRAFT_ADMIN_TOKEN="$server_admin_token" RUST_LOG=info \
  "$bin" serve --listen 127.0.0.1:0 --tls-listen 127.0.0.1:443 \
  --tls-cert "$work/certs/cert.pem" --tls-key "$work/certs/key.pem" \
  --data-dir "$work/data" --admin-email "$admin_email" --admin-password "$admin_password" \
  --log-format json >/dev/null 2>"$work/server.log" &
server_pid=$!

# The plain listener is on port 0: read the address the server logs.
wait_for_address " (is port 443 taken?)"
plain="$addr"
plain_port="${plain##*:}"

export NODE_EXTRA_CA_CERTS="$work/certs/ca.pem"
# Both listeners answer, and the TLS one with a certificate this CA signed for the names.
if ! urls_answer "http://$plain/healthz" "https://eds.localtest/healthz" "https://mws.localtest/healthz"; then
  fail_setup "the server's /healthz did not answer on http://$plain and https://eds.localtest (is port 443 taken?)"
fi
echo "== updraft on http://$plain and https://{eds,mws}.localtest:443"

export CONFORMANCE_EDS_ADDRESS=https://eds.localtest
export CONFORMANCE_MWS_ADDRESS=https://mws.localtest
export CONFORMANCE_MWS_PLAIN_ADDRESS="http://mws.localtest:$plain_port"
export CONFORMANCE_ADMIN_BASE="http://$plain"
export CONFORMANCE_ADMIN_EMAIL="$admin_email"
export CONFORMANCE_ADMIN_PASSWORD="$admin_password"
export CONFORMANCE_SERVER_ADMIN_TOKEN="$server_admin_token"
export CONFORMANCE_SECURITY_TOKEN="$security_token"

# ---- run -------------------------------------------------------------------------------------------------------
echo "== npm qtc SDK conformance (node --test)"
run_node_tests 60000 "$@" "$suite/"
