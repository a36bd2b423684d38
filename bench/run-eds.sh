#!/usr/bin/env bash
# EDS throughput with wrk: point reads by id (ACL checked), durable inserts, 20-item filtered and
# sorted lists, over a collection of $OBJECTS objects. Server on core 0, wrk on core 1.
# Then the same three steps against Parse Server on the local PostgreSQL (bench/peers/parse-server).
# Usage: bench/run-eds.sh   (knobs: OBJECTS, SECONDS_EACH, CONNECTIONS, SKIP_BUILD=1, PEER=0 to skip it)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OBJECTS=${OBJECTS:-100000}
SECONDS_EACH=${SECONDS_EACH:-10}
CONNECTIONS=${CONNECTIONS:-32}
PORT=18180
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
[[ ${SKIP_BUILD:-} == 1 ]] || cargo build --release -q -p updraft-server --manifest-path "$ROOT/Cargo.toml"
# Let earlier disk work (the peer's PostgreSQL checkpoints, a previous round's files) finish first: inserts
# wait on fsync, and a busy disk otherwise shows up in whichever server runs next.
settle() { sync; psql -q -h 127.0.0.1 -U postgres -c CHECKPOINT postgres >/dev/null 2>&1 || true; sync; sleep 3; }
DATA=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
settle
taskset -c 0 "$ROOT/target/release/updraft" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" \
    --admin-email bench@example.com --admin-password bench-password 2>"$DATA/server.log" &
SERVER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
BASE=http://127.0.0.1:$PORT
TOKEN=$(curl -s "$BASE/v1/account/auth/oauth2/token" -d 'grant_type=password&username=bench@example.com&password=bench-password' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
read -r BACKEND MASTER_KEY < <(curl -s "$BASE/v1/account/apps" -H "Authorization: Bearer $TOKEN" -d '{"name":"bench"}' \
    | python3 -c 'import json,sys; e=json.load(sys.stdin)["environments"][0]; print(e["id"], e["masterKeys"][0]["key"])')
export BACKEND
# `n` is declared indexed, as an application sorting on it would; the peer gets the same index below.
curl -sf -o /dev/null "$BASE/v1/object_types" -H "Authorization: Bearer $TOKEN" -H "Enginio-Backend-Id: $BACKEND" \
    -H "Enginio-Backend-MasterKey: $MASTER_KEY" \
    -d '{"name":"bench","properties":[{"name":"title","type":"string"},{"name":"done","type":"boolean"},{"name":"n","type":"number","indexed":true}]}'

echo "== durable inserts (also fills the collection)"
# Insert until the collection holds $OBJECTS objects; the first run is the measured one.
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$ROOT/bench/eds/insert.lua" "$BASE/v1/objects/bench"
python3 - "$BASE" "$BACKEND" "$OBJECTS" <<'PY'
import json, sys, urllib.request, concurrent.futures
base, backend, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
def get(path):
    req = urllib.request.Request(base + path, headers={"Enginio-Backend-Id": backend})
    return json.load(urllib.request.urlopen(req))
have = get("/v1/objects/bench?count=1")["count"]
def post(n):
    req = urllib.request.Request(base + "/v1/objects/bench", data=json.dumps({"title": "fill", "done": n % 2 == 0, "n": n}).encode(), headers={"Enginio-Backend-Id": backend}, method="POST")
    urllib.request.urlopen(req).read()
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(post, range(max(0, target - have))))
print("objects:", get("/v1/objects/bench?count=1")["count"], file=sys.stderr)
PY
export IDS_FILE="$DATA/ids.txt"
curl -s "$BASE/v1/objects/bench?limit=1000" -H "Enginio-Backend-Id: $BACKEND" | python3 -c 'import json,sys; print("\n".join(o["id"] for o in json.load(sys.stdin)["results"]))' > "$IDS_FILE"

echo "== point reads by id"
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$ROOT/bench/eds/read.lua" "$BASE"
echo "== 20-item list, filtered and sorted"
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$ROOT/bench/eds/list.lua" "$BASE"

[[ ${PEER:-1} == 1 ]] || exit 0
echo "### peer: Parse Server on PostgreSQL"
kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true
PEER_DIR="$ROOT/bench/peers/parse-server"
[[ -d $PEER_DIR/node_modules ]] || npm ci --prefix "$PEER_DIR" --no-audit --no-fund --loglevel=error
psql -q -h 127.0.0.1 -U postgres -c 'DROP DATABASE IF EXISTS parse_bench' -c 'CREATE DATABASE parse_bench' postgres
settle
# From the temp dir, and with its logs folder there: Parse writes logs where it starts.
(cd "$DATA" && PARSE_SERVER_LOGS_FOLDER="$DATA/parse-logs" PORT=18190 exec taskset -c 0 node "$PEER_DIR/server.js") >"$DATA/parse.log" 2>&1 &
SERVER=$!
for _ in $(seq 200); do curl -sf -o /dev/null -H 'X-Parse-Application-Id: bench' "http://127.0.0.1:18190/parse/health" && break; sleep 0.1; done
PBASE=http://127.0.0.1:18190
# The same schema and index on `n` as Updraft's side.
curl -sf -o /dev/null "$PBASE/parse/schemas/Bench" -H 'X-Parse-Application-Id: bench' -H 'X-Parse-Master-Key: bench-master' \
    -H 'Content-Type: application/json' \
    -d '{"className":"Bench","fields":{"title":{"type":"String"},"done":{"type":"Boolean"},"n":{"type":"Number"}},"indexes":{"n_1":{"n":1}}}'
echo "== durable inserts (also fills the collection)"
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$ROOT/bench/eds/parse-insert.lua" "$PBASE/parse/classes/Bench"
python3 - "$PBASE" "$OBJECTS" <<'PY'
import json, sys, urllib.request, concurrent.futures
base, target = sys.argv[1], int(sys.argv[2])
headers = {"X-Parse-Application-Id": "bench", "Content-Type": "application/json"}
def get(path):
    return json.load(urllib.request.urlopen(urllib.request.Request(base + path, headers=headers)))
have = get("/parse/classes/Bench?count=1&limit=0")["count"]
def post(n):
    body = json.dumps({"title": "fill", "done": n % 2 == 0, "n": n}).encode()
    urllib.request.urlopen(urllib.request.Request(base + "/parse/classes/Bench", data=body, headers=headers, method="POST")).read()
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(post, range(max(0, target - have))))
print("objects:", get("/parse/classes/Bench?count=1&limit=0")["count"], file=sys.stderr)
PY
curl -s "$PBASE/parse/classes/Bench?limit=1000" -H 'X-Parse-Application-Id: bench' | python3 -c 'import json,sys; print("\n".join(o["objectId"] for o in json.load(sys.stdin)["results"]))' > "$IDS_FILE"
echo "== point reads by id"
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$ROOT/bench/eds/parse-read.lua" "$PBASE"
echo "== 20-item list, filtered and sorted"
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$ROOT/bench/eds/parse-list.lua" "$PBASE"
psql -q -h 127.0.0.1 -U postgres -c 'DROP DATABASE IF EXISTS parse_bench' postgres
