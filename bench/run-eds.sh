#!/usr/bin/env bash
# EDS throughput with wrk: point reads by id (ACL checked), durable inserts, 20-item filtered and
# sorted lists, over a collection of $OBJECTS objects. Server on core 0, wrk on core 1.
# Then the same three steps against Parse Server on the local PostgreSQL (bench/peers/parse-server).
# Usage: bench/run-eds.sh   (knobs: OBJECTS, SECONDS_EACH, CONNECTIONS, SKIP_BUILD=1, PEER=0 to skip it,
# STORE=postgres to run Updraft on the local PostgreSQL too, in a database of its own, as Parse is)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OBJECTS=${OBJECTS:-100000}
SECONDS_EACH=${SECONDS_EACH:-10}
CONNECTIONS=${CONNECTIONS:-32}
PORT=18180
need_wrk
[[ ${SKIP_BUILD:-} == 1 ]] || cargo_release -p updraft-server
init_work
settle
STORE_ARGS=()
if [[ ${STORE:-sqlite} == postgres ]]; then
  recreate_db updraft_bench
  STORE_ARGS=(--database-url "postgres://postgres@127.0.0.1:5432/updraft_bench")
fi
serve_updraft "$TARGET_DIR/release/updraft" 0 $PORT "$WORK" "${BENCH_ADMIN[@]}" "${STORE_ARGS[@]}" 2>"$WORK/server.log"
SERVER_PID=$!
wait_http "$SERVER_PID" 100 "http://127.0.0.1:$PORT/healthz" || true
BASE=http://127.0.0.1:$PORT
eds_app "$BASE" "$BENCH_SCHEMA"
export BACKEND

echo "== durable inserts (also fills the collection)"
# Insert until the collection holds $OBJECTS objects; the first run is the measured one.
run_wrk "$ROOT/bench/eds/insert.lua" "$BASE/v1/objects/bench"
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
export IDS_FILE="$WORK/ids.txt"
curl -s "$BASE/v1/objects/bench?limit=1000" -H "Enginio-Backend-Id: $BACKEND" | python3 -c 'import json,sys; print("\n".join(o["id"] for o in json.load(sys.stdin)["results"]))' > "$IDS_FILE"

echo "== point reads by id"
run_wrk "$ROOT/bench/eds/read.lua" "$BASE"
echo "== 20-item list, filtered and sorted"
run_wrk "$ROOT/bench/eds/list.lua" "$BASE"

stop_server
[[ ${STORE:-sqlite} != postgres ]] || drop_db updraft_bench
[[ ${PEER:-1} == 1 ]] || exit 0
echo "### peer: Parse Server on PostgreSQL"
peer_ready parse-server
recreate_db parse_bench
settle
serve_parse "$WORK" "$WORK/parse-logs" 18190 >"$WORK/parse.log" 2>&1
SERVER_PID=$!
PBASE=http://127.0.0.1:18190
wait_http "$SERVER_PID" 200 "$PBASE/parse/health" -H 'X-Parse-Application-Id: bench' || true
# The same schema and index on `n` as Updraft's side.
parse_bench_class "$PBASE"
echo "== durable inserts (also fills the collection)"
run_wrk "$ROOT/bench/eds/parse-insert.lua" "$PBASE/parse/classes/Bench"
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
run_wrk "$ROOT/bench/eds/parse-read.lua" "$PBASE"
echo "== 20-item list, filtered and sorted"
run_wrk "$ROOT/bench/eds/parse-list.lua" "$PBASE"
drop_db parse_bench
