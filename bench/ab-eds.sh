#!/usr/bin/env bash
# Paired A/B of two `updraft` binaries on one EDS step: both servers up at once on core 0, each with the same
# app, schema and objects, and `wrk` on core 1 alternating between them, so that the machine's drift hits both.
# Usage: bench/ab-eds.sh <binary A> <binary B>
#   knobs: STEP=read|list (default read), ROUNDS (8), SECONDS_EACH (5), OBJECTS (5000), CONNECTIONS (32),
#          LOG_A / LOG_B: RUST_LOG of each server (default info, the server's own default)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
A=$1 B=$2
STEP=${STEP:-read} ROUNDS=${ROUNDS:-8} SECONDS_EACH=${SECONDS_EACH:-5} OBJECTS=${OBJECTS:-5000}
CONNECTIONS=${CONNECTIONS:-32}
need_wrk
PIDS=()
# At exit (bench_traps), before WORK goes.
cleanup_more() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
}
init_work

# start NAME BINARY PORT LOG: a server with an app, the bench schema and $OBJECTS objects.
start() {
    local name=$1 bin=$2 port=$3 log=$4 base="http://127.0.0.1:$3"
    mkdir -p "$WORK/$name"
    RUST_LOG=$log serve_updraft "$bin" 0 "$port" "$WORK/$name" \
        --admin-email ab@example.com --admin-password ab-password 2>"$WORK/$name/server.log"
    PIDS+=($!)
    wait_http "$!" 100 "$base/healthz" || true
    python3 - "$base" "$OBJECTS" "$WORK/$name" <<'PY'
import json, sys, urllib.parse, urllib.request, concurrent.futures
base, objects, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def call(path, body=None, headers={}, form=False):
    data = None if body is None else (urllib.parse.urlencode(body) if form else json.dumps(body)).encode()
    return json.load(urllib.request.urlopen(urllib.request.Request(base + path, data=data, headers=headers)))
token = call("/v1/account/auth/oauth2/token", {"grant_type": "password", "username": "ab@example.com", "password": "ab-password"}, form=True)["access_token"]
env = call("/v1/account/apps", {"name": "ab"}, {"Authorization": "Bearer " + token})["environments"][0]
backend = env["id"]
schema = {"name": "bench", "properties": [{"name": "title", "type": "string"}, {"name": "done", "type": "boolean"}, {"name": "n", "type": "number", "indexed": True}]}
call("/v1/object_types", schema, {"Authorization": "Bearer " + token, "Enginio-Backend-Id": backend, "Enginio-Backend-MasterKey": env["masterKeys"][0]["key"]})
def post(n):
    call("/v1/objects/bench", {"title": "fill", "done": n % 2 == 0, "n": n}, {"Enginio-Backend-Id": backend})
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(post, range(objects)))
ids = call("/v1/objects/bench?limit=1000", headers={"Enginio-Backend-Id": backend})["results"]
open(out + "/ids.txt", "w").write("\n".join(o["id"] for o in ids))
open(out + "/backend", "w").write(backend)
PY
}

start a "$A" 18381 "${LOG_A:-info}"
start b "$B" 18382 "${LOG_B:-info}"
echo "step $STEP, $OBJECTS objects, $ROUNDS rounds of ${SECONDS_EACH}s; A=$A (RUST_LOG=${LOG_A:-info}), B=$B (RUST_LOG=${LOG_B:-info})"
for round in $(seq "$ROUNDS"); do
    line="round $round"
    for name in a b; do
        port=$([[ $name == a ]] && echo 18381 || echo 18382)
        rps=$(IDS_FILE="$WORK/$name/ids.txt" BACKEND=$(cat "$WORK/$name/backend") \
            run_wrk "$ROOT/bench/eds/$STEP.lua" "http://127.0.0.1:$port" | awk '/Requests\/sec/ {print $2}')
        line+="  $name ${rps} req/s"
    done
    echo "$line"
done
