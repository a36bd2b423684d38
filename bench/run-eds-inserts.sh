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
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-10}
CONNECTIONS=${CONNECTIONS:-32}
PEER=${PEER:-1}
PORT=${PORT:-18180}
PPORT=${PEER_PORT:-18190}
PARSE_DB=${PARSE_DB:-parse_bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ ${SKIP_BUILD:-} != 1 ]]; then
    [[ -n ${BIN:-} ]] || cargo build --release -q -p updraft-server --manifest-path "$ROOT/Cargo.toml"
    [[ -n ${FLOOR:-} ]] || cargo build --release -q -p updraft-store --example insert_floor --manifest-path "$ROOT/Cargo.toml"
fi
BIN=${BIN:-$TARGET/release/updraft}
FLOOR=${FLOOR:-$TARGET/release/examples/insert_floor}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
PEER_DIR="$ROOT/bench/peers/parse-server"
if [[ $PEER == 1 && ! -d $PEER_DIR/node_modules ]]; then
    npm ci --prefix "$PEER_DIR" --no-audit --no-fund --loglevel=error
fi

WORK=$(mktemp -d)
SERVER=
stop() { [[ -z $SERVER ]] || { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; SERVER=; }; }
trap 'stop; rm -rf "$WORK"' EXIT
# Inserts wait on fsync: let the previous step's disk work (PostgreSQL's checkpoint, dirty pages) finish first.
settle() { sync; psql -q -h 127.0.0.1 -U postgres -c CHECKPOINT postgres >/dev/null 2>&1 || true; sync; sleep 3; }

# A server of someone else's on our port would be measured (and disturbed) in place of ours.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || { echo "port $1 is taken" >&2; exit 1; }; }
alive() { kill -0 "$SERVER" 2>/dev/null || { echo "the server did not start; see $1" >&2; exit 1; }; }

# wrk_rate FILE: requests per second, refusing a run with errors (an insert that failed is no insert).
wrk_rate() {
    if grep -qE 'Non-2xx|Socket errors' "$1"; then
        echo "wrk saw errors:" >&2
        cat "$1" >&2
        exit 1
    fi
    WRK_RATE=$(awk '/^Requests\/sec/ {print $2}' "$1")
}

# cpu_ticks PID: CPU time (user and system) of a process so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# updraft_round N: sets UPDRAFT (inserts/s), BATCH (mean inserts per commit), COMMIT_MS (mean commit time) and
# UPDRAFT_CPU (the server's CPU microseconds per insert).
updraft_round() {
    local dir="$WORK/updraft-$1" base="http://127.0.0.1:$PORT" token backend master_key
    mkdir -p "$dir"
    port_free $PORT
    settle
    # The group commit logs each batch at debug: its size and commit time.
    RUST_LOG=info,updraft_store::sqlite::group_commit=debug taskset -c 0 "$BIN" serve --listen 127.0.0.1:$PORT \
        --data-dir "$dir" --admin-email bench@example.com --admin-password bench-password 2>"$dir/server.log" &
    SERVER=$!
    for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
    alive "$dir/server.log"
    token=$(curl -s "$base/v1/account/auth/oauth2/token" \
        -d 'grant_type=password&username=bench@example.com&password=bench-password' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    read -r backend master_key < <(curl -s "$base/v1/account/apps" -H "Authorization: Bearer $token" \
        -d '{"name":"bench"}' |
        python3 -c 'import json,sys; e=json.load(sys.stdin)["environments"][0]; print(e["id"], e["masterKeys"][0]["key"])')
    curl -sf -o /dev/null "$base/v1/object_types" -H "Authorization: Bearer $token" \
        -H "Enginio-Backend-Id: $backend" -H "Enginio-Backend-MasterKey: $master_key" \
        -d '{"name":"bench","properties":[{"name":"title","type":"string"},{"name":"done","type":"boolean"},{"name":"n","type":"number","indexed":true}]}'
    local ticks
    ticks=$(cpu_ticks "$SERVER")
    BACKEND=$backend taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$ROOT/bench/eds/insert.lua" \
        "$base/v1/objects/bench" >"$dir/wrk.txt"
    ticks=$(($(cpu_ticks "$SERVER") - ticks))
    stop
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
    port_free $PPORT
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $PARSE_DB" -c "CREATE DATABASE $PARSE_DB" postgres
    settle
    # From its own dir, with its logs there: Parse writes logs where it starts.
    (cd "$dir" && DATABASE_URI="postgres://postgres@127.0.0.1:5432/$PARSE_DB" PARSE_SERVER_LOGS_FOLDER="$dir/logs" \
        PORT=$PPORT exec taskset -c 0 node "$PEER_DIR/server.js") \
        >"$dir/parse.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 200); do
        curl -sf -o /dev/null -H 'X-Parse-Application-Id: bench' "$base/parse/health" && break
        sleep 0.1
    done
    alive "$dir/parse.log"
    # The same schema and index on `n` as Updraft's side.
    curl -sf -o /dev/null "$base/parse/schemas/Bench" -H 'X-Parse-Application-Id: bench' \
        -H 'X-Parse-Master-Key: bench-master' -H 'Content-Type: application/json' \
        -d '{"className":"Bench","fields":{"title":{"type":"String"},"done":{"type":"Boolean"},"n":{"type":"Number"}},"indexes":{"n_1":{"n":1}}}'
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" -s "$ROOT/bench/eds/parse-insert.lua" \
        "$base/parse/classes/Bench" >"$dir/wrk.txt"
    stop
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $PARSE_DB" postgres
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
