#!/usr/bin/env bash
# Durable inserts only, beside their floor: each round runs the insert step of bench/run-eds.sh (wrk, $CONNECTIONS
# connections posting small objects) against a fresh Updraft and a fresh Parse Server on the local PostgreSQL, and
# the floor program (crates/updraft-store/examples/insert_floor.rs: the same SQLite commits and nothing else) at
# the batch size Updraft's group commit saw in that round. Servers and the floor on core 0, wrk on core 1.
# Prints each round and the median of $ROUNDS rounds: floor inserts/s, Updraft inserts/s, floor/Updraft, Parse
# inserts/s, Updraft/Parse; with the mean batch (inserts per commit), the mean commit time of both, and the CPU time
# per insert of both (Updraft: the whole server, HTTP included), which a busy machine disturbs less than the rates.
# Usage: bench/run-eds-inserts.sh
#   knobs: ROUNDS (3), SECONDS_EACH (10), CONNECTIONS (32), PEER=0 to skip Parse,
#          PORT (18180), PEER_PORT (18190), PARSE_DB (parse_bench; dropped and made anew each round),
#          BIN (the updraft binary) and FLOOR (the insert_floor example): each built here unless given or SKIP_BUILD=1
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-10}
CONNECTIONS=${CONNECTIONS:-32}
PEER=${PEER:-1}
PORT=${PORT:-18180}
PPORT=${PEER_PORT:-18190}
PARSE_DB=${PARSE_DB:-parse_bench}
if [[ ${SKIP_BUILD:-} != 1 ]]; then
    [[ -n ${BIN:-} ]] || cargo_release -p updraft-server
    [[ -n ${FLOOR:-} ]] || cargo_release -p updraft-store --example insert_floor
fi
BIN=${BIN:-$TARGET_DIR/release/updraft}
FLOOR=${FLOOR:-$TARGET_DIR/release/examples/insert_floor}
need_wrk
if [[ $PEER == 1 ]]; then
    peer_ready parse-server
fi

init_work

# A server of someone else's on our port would be measured (and disturbed) in place of ours.
port_free() { ! port_open "$1" || { echo "port $1 is taken" >&2; exit 1; }; }
alive() { kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server did not start; see $1" >&2; exit 1; }; }

# wrk_rate FILE: requests per second, refusing a run with errors (an insert that failed is no insert).
wrk_rate() {
    if grep -qE 'Non-2xx|Socket errors' "$1"; then
        echo "wrk saw errors:" >&2
        cat "$1" >&2
        exit 1
    fi
    WRK_RATE=$(awk '/^Requests\/sec/ {print $2}' "$1")
}

# updraft_round N: sets UPDRAFT (inserts/s), BATCH (mean inserts per commit), COMMIT_MS (mean commit time) and
# UPDRAFT_CPU (the server's CPU microseconds per insert).
updraft_round() {
    local dir="$WORK/updraft-$1" base="http://127.0.0.1:$PORT"
    mkdir -p "$dir"
    port_free "$PORT"
    settle
    # The group commit logs each batch at debug: its size and commit time.
    RUST_LOG=info,updraft_store::sqlite::group_commit=debug \
        serve_updraft "$BIN" 0 "$PORT" "$dir" "${BENCH_ADMIN[@]}" 2>"$dir/server.log"
    SERVER_PID=$!
    wait_http "$SERVER_PID" 100 "$base/healthz" || true
    alive "$dir/server.log"
    eds_app "$base" "$BENCH_SCHEMA"
    local ticks
    ticks=$(cpu_ticks "$SERVER_PID")
    BACKEND=$BACKEND run_wrk "$ROOT/bench/eds/insert.lua" "$base/v1/objects/bench" >"$dir/wrk.txt"
    ticks=$(($(cpu_ticks "$SERVER_PID") - ticks))
    stop_server
    wrk_rate "$dir/wrk.txt"
    UPDRAFT=$WRK_RATE
    UPDRAFT_CPU=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" '/requests in/ {printf "%.1f", t * 1e6 / hz / $1}' \
        "$dir/wrk.txt")
    read -r BATCH COMMIT_MS < <(grep -o 'inserts=[0-9]* commit_us=[0-9]*' "$dir/server.log" | tr '=' ' ' |
        awk '{n++; i+=$2; t+=$4} END {if (n) printf "%.1f %.2f\n", i/n, t/n/1000; else print "0 0"}')
}

# floor_round BATCH: sets FLOOR_RATE (inserts/s), FLOOR_MS (mean commit time) and FLOOR_CPU (CPU microseconds per
# insert) of the floor at that batch.
floor_round() {
    settle
    taskset -c 0 "$FLOOR" --seconds "$SECONDS_EACH" --dir "$WORK" "$1" >"$WORK/floor.txt"
    read -r FLOOR_RATE FLOOR_MS FLOOR_CPU < <(awk '$1 ~ /^[0-9]+$/ {print $3, $4, $8}' "$WORK/floor.txt")
}

# parse_round N: sets PARSE (inserts/s).
parse_round() {
    local dir="$WORK/parse-$1" base="http://127.0.0.1:$PPORT"
    mkdir -p "$dir"
    port_free "$PPORT"
    recreate_db "$PARSE_DB"
    settle
    serve_parse "$dir" "$dir/logs" "$PPORT" DATABASE_URI="postgres://postgres@127.0.0.1:5432/$PARSE_DB" >"$dir/parse.log" 2>&1
    SERVER_PID=$!
    wait_http "$SERVER_PID" 200 "$base/parse/health" -H 'X-Parse-Application-Id: bench' || true
    alive "$dir/parse.log"
    # The same schema and index on `n` as Updraft's side.
    parse_bench_class "$base"
    run_wrk "$ROOT/bench/eds/parse-insert.lua" "$base/parse/classes/Bench" >"$dir/wrk.txt"
    stop_server
    drop_db "$PARSE_DB"
    wrk_rate "$dir/wrk.txt"
    PARSE=$WRK_RATE
}

RESULTS="$WORK/results"
: >"$RESULTS"
for round in $(seq "$ROUNDS"); do
    updraft_round "$round"
    k=$(awk -v b="$BATCH" 'BEGIN {k = int(b + 0.5); print (k < 1 ? 1 : k)}')
    floor_round "$k"
    PARSE=0
    [[ $PEER != 1 ]] || parse_round "$round"
    echo "$round $BATCH $COMMIT_MS $FLOOR_MS $FLOOR_CPU $UPDRAFT_CPU $FLOOR_RATE $UPDRAFT $PARSE" >>"$RESULTS"
    echo "round $round: updraft $UPDRAFT/s (batch $BATCH), floor $FLOOR_RATE/s at batch $k, parse $PARSE/s" >&2
done

python3 - "$RESULTS" "$CONNECTIONS" <<'PY'
import statistics, sys
rows = [list(map(float, line.split())) for line in open(sys.argv[1]) if line.strip()]
ratio = lambda a, b: f"{a / b:.2f}" if b else "-"
print(f"durable inserts, {sys.argv[2]} connections; batch = inserts per commit in Updraft, the floor runs at it rounded")
print("commit_ms: mean commit time; cpu_us: CPU time per insert (Updraft's: the whole server, HTTP included)")
head = ("round", "batch", "commit_ms", "floor_ms", "floor_cpu_us", "updraft_cpu_us", "floor/s", "updraft/s",
        "floor/updraft", "parse/s", "updraft/parse")
print("".join(f"{h:>15}" for h in head))
def show(name, r):
    _, batch, commit_ms, floor_ms, floor_cpu, updraft_cpu, floor, updraft, parse = r
    cells = (name, f"{batch:.1f}", f"{commit_ms:.2f}", f"{floor_ms:.2f}", f"{floor_cpu:.1f}", f"{updraft_cpu:.1f}",
             f"{floor:.0f}", f"{updraft:.0f}", ratio(floor, updraft), f"{parse:.0f}" if parse else "-",
             ratio(updraft, parse))
    print("".join(f"{c:>15}" for c in cells))
for r in rows:
    show(str(int(r[0])), r)
if len(rows) > 1:
    show("median", [0] + [statistics.median(col) for col in list(zip(*rows))[1:]])
PY
