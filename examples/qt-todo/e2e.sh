#!/usr/bin/env bash
# End-to-end test of the Qt Todo demo against a real `updraft serve`:
#   build examples/qt-todo with qmake, start updraft (EDS + MWS in eds mode), make an app and two users,
#   run the Qt client as alice, and check that bob's create/update/delete of a todo reach her live while
#   a todo she may not read never does.
#
#   UPDRAFT_BIN=$PWD/target/debug/updraft bash examples/qt-todo/e2e.sh
#
# Needs qmake, Qt 5 (QtNetwork, QtWebSockets) headers, g++, make, curl and python3. Builds nothing of updraft.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${UPDRAFT_BIN:-target/debug/updraft}"
[[ "$bin" = /* ]] || bin="$root/$bin"
if [[ ! -x "$bin" ]]; then
  echo "qt-todo e2e: updraft binary not found at $bin (cargo build -p updraft-server, or set UPDRAFT_BIN)" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/qt-todo-e2e.XXXXXX")"
server_pid="" client_pid=""
cleanup() {
  # Only our own two processes, by pid.
  [[ -n "$client_pid" ]] && kill "$client_pid" 2>/dev/null || true
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "qt-todo e2e: FAIL: $*" >&2
  if [[ -s "$work/client.out" ]]; then echo "--- client stdout" >&2; tail -n 30 "$work/client.out" >&2; fi
  if [[ -s "$work/client.err" ]]; then echo "--- client stderr" >&2; tail -n 30 "$work/client.err" >&2; fi
  if [[ -s "$work/server.log" ]]; then echo "--- server log (tail)" >&2; tail -n 30 "$work/server.log" >&2; fi
  exit 1
}

# ---- build the Qt client, out of tree ------------------------------------------------------------
if command -v qmake >/dev/null && qmake -query QT_VERSION 2>/dev/null | grep -q '^5\.'; then qmake=(qmake)
elif [[ -x /usr/lib/qt5/bin/qmake ]]; then qmake=(/usr/lib/qt5/bin/qmake)
elif command -v qmake >/dev/null; then qmake=(qmake -qt=qt5)
else echo "qt-todo e2e: qmake (Qt 5) not found; apt-get install qtbase5-dev libqt5websockets5-dev qt5-qmake" >&2; exit 2
fi
echo "== build qt-todo (${qmake[*]})"
mkdir "$work/build"
(cd "$work/build" && "${qmake[@]}" "$here/qt-todo.pro" >/dev/null && make -s -j2 >/dev/null) ||
  { echo "qt-todo e2e: building the Qt client failed" >&2; exit 1; }
client="$work/build/qt-todo"

# ---- start updraft -----------------------------------------------------------------------------------
admin_password="admin-$RANDOM$RANDOM"
security_token="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
mkdir "$work/data"
# A clean environment for the server: no settings inherited from the caller's UPDRAFT_* or EDS_* variables.
env -u EDS_BACKEND_ID -u EDS_URI -u EDS_PERMISSIONS -u APP_DOMAIN -u UPDRAFT_CONFIG -u UPDRAFT_ADMIN_TOKEN \
  ACCESS_CONTROL=eds SECURITY_TOKEN="$security_token" RUST_LOG=info \
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --log-format json \
  --admin-email admin@example.com --admin-password "$admin_password" 2>"$work/server.log" >/dev/null &
server_pid=$!

# Port 0: the server picks a free port and logs it; read it from the log.
addr=""
for _ in $(seq 100); do
  addr="$(python3 - "$work/server.log" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        fields = json.loads(line).get("fields", {})
    except ValueError:
        continue
    if fields.get("message") == "updraft listening":
        print(fields["local_addr"])
        break
PY
)"
  [[ -n "$addr" ]] && break
  kill -0 "$server_pid" 2>/dev/null || fail "updraft exited at startup"
  sleep 0.1
done
[[ -n "$addr" ]] || fail "updraft did not log its address within 10 s"
base="http://$addr"
for _ in $(seq 50); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$base/healthz" >/dev/null || fail "GET /healthz never answered"
echo "== updraft on $base"

# ---- HTTP helpers -----------------------------------------------------------------------------------
# call METHOD PATH BODY [HEADER...]: sets $status and $body. A BODY starting with '{' is sent as JSON,
# any other non-empty BODY as a form.
call() {
  local method=$1 path=$2 data=$3
  shift 3
  local args=(-sS -X "$method" -o "$work/body" -w '%{http_code}' --max-time 10 -H 'Accept: application/json')
  local h
  for h in "$@"; do args+=(-H "$h"); done
  if [[ "$data" == "{"* ]]; then args+=(-H 'Content-Type: application/json' --data-binary "$data")
  elif [[ -n "$data" ]]; then args+=(-H 'Content-Type: application/x-www-form-urlencoded' --data-binary "$data")
  fi
  status="$(curl "${args[@]}" "$base$path")" || status=000
  body="$(cat "$work/body" 2>/dev/null || true)"
}
# expect WHAT STATUS...: the last call answered one of these statuses.
expect() {
  local what=$1 s
  shift
  for s in "$@"; do [[ "$status" == "$s" ]] && return 0; done
  fail "$what: expected HTTP $*, got $status $body"
}
# field PYTHON-EXPR: evaluates EXPR over the last body, parsed as `d`.
field() {
  python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$body" "$1" ||
    fail "no $1 in $body"
}
form() { python3 -c 'import sys, urllib.parse; print(urllib.parse.urlencode(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' "$@"; }

# ---- an app, a gateway bound to it, two users -------------------------------------------------------
call POST /v1/account/auth/oauth2/token \
  "$(form grant_type password username admin@example.com password "$admin_password")"
expect "account sign-in" 200
account_token="$(field 'd["access_token"]')"

call POST /v1/account/apps '{"name":"todo"}' "Authorization: Bearer $account_token"
expect "create app" 200 201
bid="$(field 'd["environments"][0]["id"]')"
master_key="$(field 'd["environments"][0]["masterKeys"][0]["key"]')"
eds=("Enginio-Backend-Id: $bid")
echo "== backend $bid"

# The default gateway checks EDS tokens of this backend, and pushes its changes. No "uri": updraft hosts the
# backend, so it verifies the tokens itself. Binding proves ownership of the backend with its master key.
call PUT /v1/gateways/default/configuration \
  "{\"identityProvider\":{\"type\":\"enginio\",\"backendId\":\"$bid\"}}" "Authorization: Bearer $security_token" \
  "Enginio-Backend-MasterKey: $master_key"
expect "configure the gateway" 200
call GET /v1/gateways/default/configuration "" "Authorization: Bearer $security_token"
expect "read the gateway configuration" 200
[[ "$(field 'd["identityProvider"]["type"], d["identityProvider"]["backendId"]')" == "('enginio', '$bid')" ]] ||
  fail "gateway configuration does not show the backend: $body"

declare -A user_id token
for name in alice bob; do
  call POST /v1/users "{\"username\":\"$name\",\"password\":\"${name}password\"}" "${eds[@]}"
  expect "sign up $name" 201
  user_id[$name]="$(field 'd["id"]')"
  call POST /v1/auth/oauth2/token "$(form grant_type password username "$name" password "${name}password")" "${eds[@]}"
  expect "sign in $name" 200
  token[$name]="$(field 'd["access_token"]')"
done
as_bob=("${eds[@]}" "Authorization: Bearer ${token[bob]}")

# One todo before the client starts, so that its first listing has something in it.
call POST /v1/objects/todos '{"title":"already there","completed":false}' "${as_bob[@]}"
expect "create the first todo" 201

# ---- the Qt client, as alice ------------------------------------------------------------------------
echo "== qt-todo as alice"
QT_QPA_PLATFORM=offscreen TODO_PASSWORD=alicepassword \
  "$client" --url "$base" --backend "$bid" --username alice >"$work/client.out" 2>"$work/client.err" &
client_pid=$!

# await SECONDS WHAT CONDITION: waits for a line of the client's stdout, parsed as `m`, for which the Python
# CONDITION (an expression; may span lines) holds (`env` is os.environ). Fails early if the client exits.
await() {
  local seconds=$1 what=$2 cond=$3
  python3 - "$work/client.out" "$seconds" "$cond" "$client_pid" <<'PY' || fail "$what (within $seconds s)"
import json, os, sys, time
path, seconds, cond, pid = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
deadline = time.monotonic() + seconds
while True:
    with open(path, encoding="utf-8") as out:
        for line in out:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if isinstance(m, dict) and eval("(" + cond + ")", {"m": m, "env": os.environ}):
                sys.exit(0)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        print("the client exited", file=sys.stderr)
        sys.exit(1)
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.05)
PY
}
await 20 "the client never printed {\"ready\":true}" 'm.get("ready") is True'
await 1 "the first listing should hold 1 todo" 'm.get("list") == 1'

# ---- bob's changes reach alice ----------------------------------------------------------------------
export TITLE="buy milk $RANDOM$RANDOM"
call POST /v1/objects/todos "{\"title\":\"$TITLE\",\"completed\":false}" "${as_bob[@]}"
expect "create a todo" 201
todo_id="$(field 'd["id"]')"
export TODO_ID="$todo_id"
await 10 "no create event for \"$TITLE\"" \
  'm.get("meta", {}).get("eventName") == "create" and m["object"].get("title") == env["TITLE"]'
echo "   create arrived"

call PUT "/v1/objects/todos/$todo_id" '{"completed":true}' "${as_bob[@]}"
expect "update the todo" 200
await 10 "no update event with completed=true (and the title kept)" \
  'm.get("meta", {}).get("eventName") == "update" and m["object"].get("id") == env["TODO_ID"]
   and m["object"].get("completed") is True and m["object"].get("title") == env["TITLE"]'
echo "   update arrived"

call DELETE "/v1/objects/todos/$todo_id" "" "${as_bob[@]}"
expect "delete the todo" 200 204
await 10 "no delete event" \
  'm.get("meta", {}).get("eventName") == "delete" and m["object"].get("id") == env["TODO_ID"]'
echo "   delete arrived"

# ---- a todo only bob may read never reaches alice ---------------------------------------------------
# An object's ACL is set through its /access endpoint (an "accessControlList" in the create body is stored as an
# ordinary property), so: create a draft, which everyone may read, make it bob's alone, then write the secret.
call POST /v1/objects/todos '{"title":"draft","completed":false}' "${as_bob[@]}"
expect "create a draft" 201
draft_id="$(field 'd["id"]')"
bob_only="{\"id\":\"${user_id[bob]}\",\"objectType\":\"users\"}"
call POST "/v1/objects/todos/$draft_id/access" "{\"read\":[$bob_only],\"update\":[],\"delete\":[],\"admin\":[$bob_only]}" \
  "${as_bob[@]}"
expect "make the draft bob's alone" 200
export SECRET="secret $RANDOM$RANDOM"
call PUT "/v1/objects/todos/$draft_id" "{\"title\":\"$SECRET\"}" "${as_bob[@]}"
expect "write the secret" 200
call GET "/v1/objects/todos/$draft_id" "" "${eds[@]}" "Authorization: Bearer ${token[alice]}"
expect "alice reading bob's todo" 403 404
# A public todo after it: changes arrive in commit order, so once this one is in, the secret one had its chance.
export LATER="later $RANDOM$RANDOM"
call POST /v1/objects/todos "{\"title\":\"$LATER\",\"completed\":false}" "${as_bob[@]}"
expect "create a later todo" 201
await 10 "no create event for \"$LATER\"" \
  'm.get("meta", {}).get("eventName") == "create" and m["object"].get("title") == env["LATER"]'
sleep 0.5
if grep -qF "$SECRET" "$work/client.out"; then fail "alice received a change to a todo only bob may read"; fi
echo "   private change withheld"
# The model: "already there", the draft as alice last saw it (nobody tells her it went private), the later one.
python3 - "$work/client.out" <<'PY' || fail "the model's last size is not 3"
import json, sys
sizes = [m["todos"] for m in map(json.loads, open(sys.argv[1])) if "todos" in m]
sys.exit(0 if sizes and sizes[-1] == 3 else 1)
PY

# ---- the client ends when the server goes ----------------------------------------------------------
kill "$server_pid"
for _ in $(seq 100); do kill -0 "$client_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$client_pid" 2>/dev/null; then fail "the client did not exit when the server closed its socket"; fi
client_status=0
wait "$client_pid" || client_status=$?
client_pid=""
[[ "$client_status" == 0 ]] || fail "the client exited with $client_status after the socket closed"
wait "$server_pid" || true
server_pid=""

echo "qt-todo e2e: PASS"
