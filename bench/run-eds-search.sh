#!/usr/bin/env bash
# EDS full-text search, Updraft vs Parse Server's `$text` on the local PostgreSQL (a GIN index on the words), over
# collections of each size in $SIZES of short documents: object i is {"body": four words of a 10,007-word
# vocabulary, "n": i} (bench/eds-search/words.lua), each word in about 400 objects a million. Steps, with random
# words drawn per request: 1 one word, the 20 most relevant (Updraft: bm25; Parse: `order=$score`, its
# ts_rank_cd); 2 two words of one object, both required, ranked alike; 3 the count of one word. Each step for an anonymous and a signed-in
# caller (the ACL check is in the query on both systems), $SECONDS_EACH seconds, $ROUNDS rounds; the servers on
# core 0, wrk on core 1. Progress goes to stderr, the markdown table of medians to stdout.
# Usage: bench/run-eds-search.sh > table.md
#   knobs: SIZES ("1000000"), ROUNDS (3), SECONDS_EACH (5), CONNECTIONS (32), STEPS ("1 2 3"), PEER=0 (Updraft
#          alone), BIN (the updraft binary), SKIP_BUILD=1
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$ROOT/bench/eds-search
SIZES=${SIZES:-1000000}
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-5}
CONNECTIONS=${CONNECTIONS:-32}
STEPS=${STEPS:-1 2 3}
PEER=${PEER:-1}
BIN=${BIN:-$TARGET_DIR/release/updraft}
PORT=18931
PARSE_PORT=18932
DATABASE=parse_search_bench
export UPDRAFT=http://127.0.0.1:$PORT PARSE= LUA_PATH="$HERE/?.lua;$ROOT/bench/lua/?.lua;;"
need_wrk >&2
[[ ${SKIP_BUILD:-} == 1 ]] || cargo_release -p updraft-server >&2
[[ -x $BIN ]] || { log "no updraft binary at $BIN (set BIN)"; exit 1; }
[[ $PEER == 1 ]] && peer_ready parse-server >&2
for port in $PORT $PARSE_PORT; do
    if ss -Htln "sport = :$port" | grep -q .; then log "port $port is taken: is another run going?"; exit 1; fi
done

UPDRAFT_PID="" PARSE_PID=""
cleanup_more() {
    stop_pid "$UPDRAFT_PID"
    stop_pid "$PARSE_PID"
    [[ $PEER != 1 ]] || drop_db "$DATABASE" 2>/dev/null || true
}
init_work
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# Until the server has worked off what the last run left in flight (under 5% of a core for half a second).
wait_idle() {
    local before
    for _ in $(seq 120); do
        before=$(cpu_ticks "$1")
        sleep 0.5
        (($(cpu_ticks "$1") - before < 3)) && return 0
    done
    log "  (still busy after a minute; measuring anyway)"
}
RESULTS=$WORK/results.jsonl
: >"$RESULTS"

start_updraft() { # $1 objects; sets BACKEND, UPDRAFT_SESSION
    local objects=$1 data=$WORK/updraft-$1
    mkdir -p "$data"
    serve_updraft "$BIN" 0 $PORT "$data" "${BENCH_ADMIN[@]}" 2>"$WORK/updraft.log"
    UPDRAFT_PID=$!
    wait_http "$UPDRAFT_PID" 100 "$UPDRAFT/healthz" || not_up updraft "$WORK/updraft.log"
    eds_app "$UPDRAFT" '{"name":"docs","properties":[{"name":"body","type":"string","indexed":true},{"name":"n","type":"number"}]}'
    export BACKEND
    log "== Updraft: loading $objects objects over HTTP"
    local started=$SECONDS
    OBJECTS=$objects taskset -c 1 wrk -t1 -c64 -d3600s --timeout 30s -s "$HERE/load.lua" "$UPDRAFT" >"$WORK/load.log" \
        || { cat "$WORK/load.log" >&2; exit 1; }
    log "  $objects objects in $((SECONDS - started)) s ($(du -sh "$data" | cut -f1) on disk)"
    curl -sf -o /dev/null "$UPDRAFT/v1/users" -H "Enginio-Backend-Id: $BACKEND" -d '{"username":"reader","password":"reader-password"}'
    UPDRAFT_SESSION=$(curl -sf "$UPDRAFT/v1/auth/identity" -H "Enginio-Backend-Id: $BACKEND" \
        -d '{"username":"reader","password":"reader-password"}' | json_field '["sessionToken"]')
}

start_parse() { # $1 objects; sets PARSE, PARSE_SESSION
    local objects=$1 headers=(-H 'X-Parse-Application-Id: bench' -H 'Content-Type: application/json')
    recreate_db "$DATABASE"
    serve_parse "$WORK" "$WORK/parse-logs" $PARSE_PORT DATABASE_URI=postgres://postgres@127.0.0.1:5432/$DATABASE \
        >"$WORK/parse.log" 2>&1
    PARSE_PID=$!
    PARSE=http://127.0.0.1:$PARSE_PORT
    wait_http "$PARSE_PID" 300 "$PARSE/parse/health" -H 'X-Parse-Application-Id: bench' || not_up parse "$WORK/parse.log"
    curl -sf -o /dev/null "$PARSE/parse/schemas/Docs" "${headers[@]}" -H 'X-Parse-Master-Key: bench-master' \
        -d '{"className":"Docs","fields":{"body":{"type":"String"},"n":{"type":"Number"}}}'
    log "== Parse: loading $objects objects with SQL"
    pg "$DATABASE" -v objects="$objects" -f "$HERE/parse-load.sql"
    PARSE_SESSION=$(curl -sf "$PARSE/parse/users" "${headers[@]}" -d '{"username":"reader","password":"reader-password"}' | json_field '["sessionToken"]')
}

# spot_check OBJECTS: both systems count the same objects for a few words, and Parse's query uses its index.
spot_check() {
    local word count_updraft count_parse
    for j in 0 17 4242 10006; do
        word=$(lua -e "package.path='$HERE/?.lua;'..package.path; print(require('words').word($j))" 2>/dev/null \
            || python3 -c "j=$j; print('q' + chr(97 + j // 676 % 26) + chr(97 + j // 26 % 26) + chr(97 + j % 26))")
        count_updraft=$(curl -sfG "$UPDRAFT/v1/search" -H "Enginio-Backend-Id: $BACKEND" \
            --data-urlencode 'objectTypes[]=objects.docs' --data-urlencode "search={\"phrase\":\"$word\"}" \
            --data-urlencode count=1 | json_field '["count"]')
        line="  $word: Updraft $count_updraft"
        if [[ $PEER == 1 ]]; then
            count_parse=$(curl -sfG "$PARSE/parse/classes/Docs" -H 'X-Parse-Application-Id: bench' --data-urlencode \
                "where={\"body\":{\"\$text\":{\"\$search\":{\"\$term\":\"$word\",\"\$language\":\"simple\"}}}}" \
                --data-urlencode count=1 --data-urlencode limit=0 | json_field '["count"]')
            line+=", Parse $count_parse"
            [[ $count_updraft == "$count_parse" ]] || { log "$line: the systems disagree"; exit 1; }
        fi
        log "$line"
    done
    if [[ $PEER == 1 ]]; then
        log "  Parse's plan: $(pg -tA "$DATABASE" -c "EXPLAIN SELECT * FROM \"Docs\" WHERE to_tsvector('simple', body) @@ to_tsquery('simple', 'qaaa') LIMIT 20" | grep -o 'Bitmap Index Scan on [^ ]*' | head -1)"
    fi
}

measure() { # objects step caller system round
    local objects=$1 step=$2 caller=$3 system=$4 round=$5 base pid session out result
    if [[ $system == updraft ]]; then base=$UPDRAFT pid=$UPDRAFT_PID session=$UPDRAFT_SESSION; else base=$PARSE pid=$PARSE_PID session=$PARSE_SESSION; fi
    [[ $caller == signed-in ]] || session=
    wait_idle "$pid"
    out=$(SYSTEM=$system STEP=$step OBJECTS=$objects SESSION=$session SEED=$((round * 100 + step)) \
        taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" --timeout 10s -s "$HERE/query.lua" "$base" 2>&1) \
        || { log "$out"; exit 1; }
    result=$(grep '^RESULT ' <<<"$out" | cut -c8-) || { log "$out"; exit 1; }
    python3 - "$objects" "$step" "$caller" "$system" "$round" "$result" >>"$RESULTS" <<'PY'
import json, sys
objects, step, caller, system, round_, result = sys.argv[1:]
r = json.loads(result)
print(f"{system:7} step {step} {caller:9} round {round_}: {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f}  p95 {r['p95_ms']:7.2f}  p99 {r['p99_ms']:7.2f} ms  non-2xx {r['non2xx']} {r['first_error']}", file=sys.stderr)
r.update(objects=int(objects), step=int(step), caller=caller, system=system)
print(json.dumps(r))
PY
}

SYSTEMS=updraft
[[ $PEER == 1 ]] && SYSTEMS="updraft parse"
for objects in $SIZES; do
    log "### $objects objects"
    # Parse first: its load takes a minute, Updraft's over HTTP several.
    if [[ $PEER == 1 ]]; then
        start_parse "$objects"
        # PostgreSQL's checkpoint of the load would compete with Updraft's fsyncs.
        settle
    fi
    start_updraft "$objects"
    spot_check
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
    if [[ $PEER == 1 ]]; then stop_pid "$PARSE_PID"; PARSE_PID=""; drop_db "$DATABASE"; fi
done
echo
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
from collections import defaultdict
STEPS = {1: "one word, 20 most relevant", 2: "two words, both required, ranked", 3: "count of one word"}
runs = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs[(r["objects"], r["step"], r["caller"], r["system"])].append(r)
def med(rows, key):
    return statistics.median(r[key] for r in rows)
print("| objects | step | caller | Updraft req/s | p50 / p95 / p99 ms | Parse req/s | p50 / p95 / p99 ms | ratio | non-2xx |")
print("|---|---|---|---|---|---|---|---|---|")
for (objects, step, caller) in sorted({k[:3] for k in runs}):
    u, p = runs.get((objects, step, caller, "updraft"), []), runs.get((objects, step, caller, "parse"), [])
    cells = []
    for rows in (u, p):
        if rows:
            cells += [f"{med(rows, 'rps'):,.0f}", f"{med(rows, 'p50_ms'):.2f} / {med(rows, 'p95_ms'):.2f} / {med(rows, 'p99_ms'):.2f}"]
        else:
            cells += ["–", "–"]
    ratio = f"{med(u, 'rps') / med(p, 'rps'):.1f}×" if u and p and med(p, "rps") else "–"
    bad = sum(r["non2xx"] + r["timeouts"] for r in u + p)
    print(f"| {objects:,} | {step} {STEPS[step]} | {caller} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {ratio} | {bad} |")
PY
