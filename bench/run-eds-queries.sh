#!/usr/bin/env bash
# EDS list queries with random parameters (drawn per request), Updraft vs Parse Server on the local PostgreSQL,
# over collections of each size in $SIZES. Object i: {"title":"item i","done":i%2==0,"n":i,"k":i%1000,
# "owner":<ref to owner i%1000>,"note":"note i"}; n, k, title and owner indexed on both sides, done and note not.
# Steps (20-item pages): 1 equality on k; 2 the same matching nothing; 3 range on n sorted by n; 4 range on n
# sorted by k; 5 k $in 10 values; 6 owner ref, newest first (the Todo list); 7 prefix $regex on title; 8 count of
# a range on n; 9 sort by n at offset 5000; 10 equality on the unindexed note (Updraft may refuse it with 400
# "Query too expensive", which is accepted and counted); 11 count of the whole collection. Each step for an
# anonymous and a signed-in caller, on both systems, for $SECONDS_EACH seconds, $ROUNDS rounds; the servers on
# core 0, wrk on core 1.
# Progress goes to stderr, the markdown table of medians to stdout.
# Usage: bench/run-eds-queries.sh > table.md
#   knobs: SIZES ("100000 1000000"), ROUNDS (3), SECONDS_EACH (5), CONNECTIONS (32), STEPS ("1 … 11"),
#          PEER=0 (Updraft alone), BIN (the updraft binary), SKIP_BUILD=1
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$ROOT/bench/eds-queries
SIZES=${SIZES:-100000 1000000}
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-5}
CONNECTIONS=${CONNECTIONS:-32}
STEPS=${STEPS:-1 2 3 4 5 6 7 8 9 10 11}
PEER=${PEER:-1}
BIN=${BIN:-$TARGET_DIR/release/updraft}
PORT=18913
PARSE_PORT=18914
DATABASE=parse_queries_bench
export UPDRAFT=http://127.0.0.1:$PORT PARSE= LUA_PATH="$ROOT/bench/lua/?.lua;;"
need_wrk >&2
[[ ${SKIP_BUILD:-} == 1 ]] || cargo_release -p updraft-server >&2
[[ -x $BIN ]] || { log "no updraft binary at $BIN (set BIN)"; exit 1; }
if [[ $PEER == 1 ]]; then
    peer_ready parse-server >&2
fi

for port in $PORT $PARSE_PORT; do
    # Another run's server there would answer in place of ours.
    if ss -Htln "sport = :$port" | grep -q .; then log "port $port is taken: is another run going?"; exit 1; fi
done

UPDRAFT_PID="" PARSE_PID=""
# At exit (bench_traps), before WORK goes.
cleanup_more() {
    stop_pid "$UPDRAFT_PID"
    stop_pid "$PARSE_PID"
    [[ $PEER != 1 ]] || drop_db "$DATABASE" 2>/dev/null || true
}
init_work
# Waits (at most a minute) until the server has finished what the last run left in flight: wrk stops with up to
# $CONNECTIONS slow queries unanswered, and the server still works them off, which would count against the next
# run. Idle: under 5% of a core over half a second, and for Parse no query active in PostgreSQL.
wait_idle() {
    local pid=$1 before
    for _ in $(seq 120); do
        before=$(cpu_ticks "$pid")
        sleep 0.5
        if (($(cpu_ticks "$pid") - before < 3)); then
            [[ $pid != "$PARSE_PID" ]] && return 0
            [[ $(pg -tA -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DATABASE' AND state = 'active' AND pid <> pg_backend_pid()" postgres) == 0 ]] && return 0
        fi
    done
    log "  (still busy after a minute; measuring anyway)"
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# The 1000 owners every object refers to (ref target ids, the same on both systems; no user behind them, as
# neither system checks that a plain ref's target exists).
export OWNERS_FILE=$WORK/owners.txt
python3 -c 'import hashlib
for j in range(1000): print(hashlib.sha1(f"owner {j}".encode()).hexdigest()[:24])' >"$OWNERS_FILE"
RESULTS=$WORK/results.tsv
: >"$RESULTS"

start_updraft() { # $1 objects: a fresh server with a fresh backend holding them; sets BACKEND, UPDRAFT_SESSION
    local objects=$1 data=$WORK/updraft-$1
    mkdir -p "$data"
    serve_updraft "$BIN" 0 $PORT "$data" "${BENCH_ADMIN[@]}" 2>"$WORK/updraft.log"
    UPDRAFT_PID=$!
    wait_http "$UPDRAFT_PID" 100 "$UPDRAFT/healthz" || true
    eds_app "$UPDRAFT" '{"name":"bench","properties":[{"name":"n","type":"number","indexed":true},{"name":"k","type":"number","indexed":true},{"name":"title","type":"string","indexed":true},{"name":"owner","type":"ref","indexed":true},{"name":"done","type":"boolean"},{"name":"note","type":"string"}]}'
    export BACKEND
    log "== Updraft: loading $objects objects over HTTP"
    local started=$SECONDS
    OBJECTS=$objects taskset -c 1 wrk -t1 -c64 -d3600s --timeout 30s -s "$HERE/load.lua" "$UPDRAFT" >"$WORK/load.log" \
        || { cat "$WORK/load.log" >&2; exit 1; }
    local have
    have=$(curl -sf "$UPDRAFT/v1/objects/bench?count=1" -H "Enginio-Backend-Id: $BACKEND" | json_field '["count"]')
    [[ $have == "$objects" ]] || { log "Updraft holds $have objects, not $objects"; exit 1; }
    log "  $objects objects in $((SECONDS - started)) s"
    curl -sf -o /dev/null "$UPDRAFT/v1/users" -H "Enginio-Backend-Id: $BACKEND" -d '{"username":"reader","password":"reader-password"}'
    UPDRAFT_SESSION=$(curl -sf "$UPDRAFT/v1/auth/identity" -H "Enginio-Backend-Id: $BACKEND" \
        -d '{"username":"reader","password":"reader-password"}' | json_field '["sessionToken"]')
    export UPDRAFT_SESSION
}

start_parse() { # $1 objects: a fresh Parse Server on a fresh database holding them; sets PARSE_SESSION
    local objects=$1 headers=(-H 'X-Parse-Application-Id: bench' -H 'Content-Type: application/json')
    recreate_db "$DATABASE"
    serve_parse "$WORK" "$WORK/parse-logs" $PARSE_PORT DATABASE_URI=postgres://postgres@127.0.0.1:5432/$DATABASE \
        >"$WORK/parse.log" 2>&1
    PARSE_PID=$!
    PARSE=http://127.0.0.1:$PARSE_PORT
    wait_http "$PARSE_PID" 300 "$PARSE/parse/health" -H 'X-Parse-Application-Id: bench' || true
    # The class through Parse's schema API, so Parse knows it; the rows and indexes in SQL (parse-load.sql), as
    # HTTP inserts run at about 1.5k/s.
    curl -sf -o /dev/null "$PARSE/parse/schemas/Bench" "${headers[@]}" -H 'X-Parse-Master-Key: bench-master' \
        -d '{"className":"Bench","fields":{"title":{"type":"String"},"done":{"type":"Boolean"},"n":{"type":"Number"},"k":{"type":"Number"},"owner":{"type":"Pointer","targetClass":"_User"},"note":{"type":"String"}}}'
    log "== Parse: loading $objects objects with SQL"
    local started=$SECONDS
    pg "$DATABASE" -v objects="$objects" -v owners="$(paste -sd, "$OWNERS_FILE")" -f "$HERE/parse-load.sql"
    log "  $objects objects in $((SECONDS - started)) s"
    local have
    have=$(curl -sf "$PARSE/parse/classes/Bench?count=1&limit=0&where=%7B%22n%22%3A%7B%22%24gte%22%3A0%7D%7D" "${headers[@]}" | json_field '["count"]')
    [[ $have == "$objects" ]] || { log "Parse holds $have objects, not $objects"; exit 1; }
    log "  through Parse: $(curl -sf "$PARSE/parse/classes/Bench?where=%7B%22n%22%3A7%7D" "${headers[@]}")"
    PARSE_SESSION=$(curl -sf "$PARSE/parse/users" "${headers[@]}" -d '{"username":"reader","password":"reader-password"}' | json_field '["sessionToken"]')
    export PARSE PARSE_SESSION
}

measure() { # objects step caller system round: one wrk run, one line in $RESULTS
    local objects=$1 step=$2 caller=$3 system=$4 round=$5 base pid session out result
    if [[ $system == updraft ]]; then base=$UPDRAFT pid=$UPDRAFT_PID session=$UPDRAFT_SESSION; else base=$PARSE pid=$PARSE_PID session=$PARSE_SESSION; fi
    [[ $caller == signed-in ]] || session=
    wait_idle "$pid"
    # The same SEED for both systems within a round: they answer the same sequence of queries.
    out=$(SYSTEM=$system STEP=$step OBJECTS=$objects SESSION=$session SEED=$((round * 100 + step)) \
        taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --timeout 10s -s "$HERE/query.lua" "$base" 2>&1) \
        || { log "$out"; exit 1; }
    result=$(grep '^RESULT ' <<<"$out" | cut -c8-) || { log "$out"; exit 1; }
    python3 - "$objects" "$step" "$caller" "$system" "$round" "$result" >>"$RESULTS" <<'PY'
import json, sys
objects, step, caller, system, round_, result = sys.argv[1:]
r = json.loads(result)
line = f"{system:7} step {step:>2} {caller:9} round {round_}: {r['rps']:9.1f} req/s  p50 {r['p50_ms']:9.2f} ms  p99 {r['p99_ms']:9.2f} ms"
if r["requests"] == 0:
    line = f"{system:7} step {step:>2} {caller:9} round {round_}: no answer within the run"
if r["non2xx"] or r["timeouts"] or r["socket_errors"]:
    line += f"  non-2xx {r['non2xx']}  timeouts {r['timeouts']}  socket errors {r['socket_errors']}"
expected = system == "updraft" and step == "10" and "too expensive" in r["first_error"]
if r["first_error"]:
    line += f"\n    first non-2xx: {r['first_error']}" + ("" if expected or system != "updraft" else "\n    ^ a BUG: Updraft should answer this query")
print(line, file=sys.stderr)
print(objects, step, caller, system, round_, r["rps"], r["p50_ms"], r["p99_ms"], r["non2xx"], r["timeouts"], r["requests"])
PY
}

SYSTEMS=updraft
[[ $PEER == 1 ]] && SYSTEMS="updraft parse"
for objects in $SIZES; do
    log "### $objects objects"
    start_updraft "$objects"
    [[ $PEER == 1 ]] && start_parse "$objects"
    log "== spot check: the answers against the data set (so Updraft against Parse)"
    python3 "$HERE/check.py" "$objects" "$STEPS" >&2
    settle
    for round in $(seq "$ROUNDS"); do
        for step in $STEPS; do
            for caller in anonymous signed-in; do
                for system in $SYSTEMS; do measure "$objects" "$step" "$caller" "$system" "$round"; done
            done
        done
    done
    stop_pid "$UPDRAFT_PID"
    UPDRAFT_PID=""
    if [[ $PEER == 1 ]]; then
        stop_pid "$PARSE_PID"
        PARSE_PID=""
        drop_db "$DATABASE"
    fi
done
echo
python3 "$HERE/report.py" "$RESULTS"
