#!/usr/bin/env bash
# Realtime paths of EDS, Updraft beside Parse Server, as a Markdown table:
#   unicast   create → socket frame latency: RATE creates/s, each todo readable by one user (an ACL naming that
#             user), SOCKETS sockets each tagged `users.<id>` of its own user, so each todo reaches one socket.
#             Parse: LiveQuery, socket i subscribed to `Todo` where owner = user i.
#   unicast-low  the same at LOW_RATE creates/s, a load Parse's LiveQuery sustains with SOCKETS subscriptions
#             (it matches every event against every subscription), so that latency is compared unsaturated.
#   public    the same with public todos at PUBLIC_RATE creates/s: every todo reaches every socket.
#   fanout    FANOUT_SOCKETS sockets, public todos at FANOUT_RATE creates/s: deliveries/s across all sockets
#             (latency sampled on every FANOUT_SAMPLE-th socket).
#   webhooks  todos created as fast as WEBHOOK_CREATORS connections allow for SECONDS_EACH; each POSTed by the
#             server to a receiver inside the load generator: deliveries/s. Updraft: `POST /v1/webhooks` (signed,
#             the receiver checks every signature). Parse: an afterSave hook (`POST /parse/hooks/triggers`).
#   webhook-lag  the same at WEBHOOK_LAG_RATE creates/s, paced: create → delivery lag.
#
# Each step runs against a freshly started server (Updraft: fresh data dir; Parse: fresh PostgreSQL database,
# dropped after), pinned to CPU 0, with `updraft-loadgen` on CPU 1. Rounds interleave the two servers, and each
# figure is the median over REPEAT rounds. Before each server start the disk is settled (sync, CHECKPOINT).
#
# Usage: bench/run-realtime.sh                       # every step, both servers, three rounds (~15 min)
#        REPEAT=1 bench/run-realtime.sh              # one round (~5 min)
#        STEPS="unicast webhooks" PEER=0 bench/run-realtime.sh
# Knobs (environment): SOCKETS RATE LOW_RATE PUBLIC_RATE FANOUT_SOCKETS FANOUT_RATE FANOUT_SAMPLE SECONDS_EACH
#   WEBHOOK_CREATORS WEBHOOK_LAG_RATE STEPS PEER=0/1 (or SERVERS="updraft parse") REPEAT SKIP_BUILD=1 RESULTS_DIR
#   UPDRAFT_BIN (an `updraft` binary to measure instead of this tree's release build)
#   TABLE_ONLY=1 (only print the table of the runs already in RESULTS_DIR)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOADGEN=$TARGET_DIR/release/updraft-loadgen
UPDRAFT=${UPDRAFT_BIN:-$TARGET_DIR/release/updraft}
PARSE_PEER=$ROOT/bench/peers/parse-server

STEPS=${STEPS:-"unicast unicast-low public fanout webhooks webhook-lag"}
SOCKETS=${SOCKETS:-5000}
RATE=${RATE:-1000}
LOW_RATE=${LOW_RATE:-10}
PUBLIC_RATE=${PUBLIC_RATE:-20}
FANOUT_SOCKETS=${FANOUT_SOCKETS:-19000}
FANOUT_RATE=${FANOUT_RATE:-10}
FANOUT_SAMPLE=${FANOUT_SAMPLE:-50}
SECONDS_EACH=${SECONDS_EACH:-10}
WEBHOOK_CREATORS=${WEBHOOK_CREATORS:-32}
WEBHOOK_LAG_RATE=${WEBHOOK_LAG_RATE:-200}
PEER=${PEER:-1}
REPEAT=${REPEAT:-3}
ADMIN_TOKEN=bench-admin
EMAIL=bench@example.com
PASSWORD=bench-password
WEBHOOK_KEY=bench-webhook-key
UPDRAFT_PORT=18380
PARSE_PORT=18390
PARSE_DB=parse_realtime
PEERS="updraft"
[[ $PEER == 1 ]] && PEERS="updraft parse"
PEERS=${SERVERS:-$PEERS}

# 19k sockets on each side need the full open-file allowance.
ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < FANOUT_SOCKETS + 500 )); then
    echo "warning: open-file limit $(ulimit -n) is too low for $FANOUT_SOCKETS sockets" >&2
fi

RESULTS_DIR=${RESULTS_DIR:-$(mktemp -d -t updraft-realtime.XXXXXX)}
mkdir -p "$RESULTS_DIR"
echo "results and logs: $RESULTS_DIR" >&2

SERVER_PID=""
SERVER_DIR=""
stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    [[ -n $SERVER_PID ]] && { wait "$SERVER_PID" 2>/dev/null || true; }
    SERVER_PID=""
    if [[ -n $SERVER_DIR ]]; then rm -rf "$SERVER_DIR"; SERVER_DIR=""; fi
}
drop_parse_db() { psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $PARSE_DB" postgres >/dev/null 2>&1 || true; }
cleanup() {
    stop_server
    [[ " $PEERS " == *" parse "* ]] && drop_parse_db
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- servers ---------------------------------------------------------------
# Inserts wait on fsync: let earlier disk work (PostgreSQL checkpoints, a previous step's files) finish first.
settle() {
    sync
    psql -q -h 127.0.0.1 -U postgres -c CHECKPOINT postgres >/dev/null 2>&1 || true
    sync
    sleep 2
}

peer_port() { [[ $1 == updraft ]] && echo $UPDRAFT_PORT || echo $PARSE_PORT; }

# Two shared cores: a compiler running elsewhere would be measured too. Waits (up to 10 min) for builds to end,
# and says so when other CPU-heavy processes are about.
wait_quiet() {
    local waited=0
    while pgrep -x rustc >/dev/null && (( waited < 600 )); do
        (( waited == 0 )) && echo "   (waiting for a rustc elsewhere to finish)" >&2
        sleep 5
        waited=$((waited + 5))
    done
    local busy
    busy=$(ps -eo pcpu=,comm= --sort=-pcpu | awk '$1 > 20 { print $2 " " $1 "%" }' | head -3 | paste -sd, -)
    [[ -z $busy ]] || echo "   (busy before this step: $busy)" >&2
}

start_server() {
    local peer=$1 log=$2
    # A server left on the port would be measured in place of the fresh one.
    if (exec 3<>"/dev/tcp/127.0.0.1/$(peer_port "$peer")") 2>/dev/null; then
        echo "error: something already listens on port $(peer_port "$peer")" >&2
        return 1
    fi
    settle
    SERVER_DIR=$(mktemp -d -t updraft-realtime-server.XXXXXX)
    case $peer in
        updraft)
            ACCESS_CONTROL=none SECURITY_TOKEN=$ADMIN_TOKEN \
                taskset -c 0 "$UPDRAFT" serve --listen 127.0.0.1:$UPDRAFT_PORT --data-dir "$SERVER_DIR" \
                --admin-email $EMAIL --admin-password $PASSWORD >"$log" 2>&1 &
            ;;
        parse)
            drop_parse_db
            psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $PARSE_DB" postgres
            # From the temp dir, with its logs there: Parse writes logs where it starts.
            (cd "$SERVER_DIR" && DATABASE_URI=postgres://postgres@127.0.0.1:5432/$PARSE_DB \
                LIVE_QUERY_CLASSES=Todo WEBHOOK_KEY=$WEBHOOK_KEY PORT=$PARSE_PORT \
                PARSE_SERVER_LOGS_FOLDER="$SERVER_DIR/parse-logs" exec taskset -c 0 node "$PARSE_PEER/server.js") \
                >"$log" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    local health=http://127.0.0.1:$UPDRAFT_PORT/healthz
    [[ $peer == parse ]] && health=http://127.0.0.1:$PARSE_PORT/parse/health
    for _ in $(seq 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        if curl -sf -o /dev/null -H 'X-Parse-Application-Id: bench' "$health"; then return 0; fi
        sleep 0.1
    done
    echo "error: $peer did not come up; see $log" >&2
    tail -5 "$log" >&2
    return 1
}

# --- steps -------------------------------------------------------------------
step_args() {
    local wait=$((SECONDS_EACH + 90))
    case $1 in
        unicast) echo "eds-changes --routing unicast --sockets $SOCKETS --rate $RATE --seconds $SECONDS_EACH --max-seconds $wait" ;;
        unicast-low) echo "eds-changes --routing unicast --sockets $SOCKETS --rate $LOW_RATE --seconds $SECONDS_EACH --max-seconds $wait" ;;
        public) echo "eds-changes --routing public --sockets $SOCKETS --rate $PUBLIC_RATE --seconds $SECONDS_EACH --max-seconds $wait" ;;
        fanout) echo "eds-changes --routing public --sockets $FANOUT_SOCKETS --rate $FANOUT_RATE --seconds $SECONDS_EACH --sample-every $FANOUT_SAMPLE --drain-seconds 30 --max-seconds $((wait + 60))" ;;
        webhooks) echo "webhooks --creators $WEBHOOK_CREATORS --seconds $SECONDS_EACH --drain-seconds 60 --max-seconds $((wait + 60))" ;;
        webhook-lag) echo "webhooks --rate $WEBHOOK_LAG_RATE --creators 16 --seconds $SECONDS_EACH --drain-seconds 30 --max-seconds $wait" ;;
        *) echo "unknown step $1" >&2; return 1 ;;
    esac
}

run_one() {
    local peer=$1 step=$2 round=$3 port args out=$RESULTS_DIR/$1.$2.$3
    port=$(peer_port "$peer")
    args=$(step_args "$step")
    echo "== $peer: $step (round $round of $REPEAT)" >&2
    wait_quiet
    start_server "$peer" "$out.server.log" || { stop_server; return 0; }
    local extra=""
    [[ $peer == parse ]] && extra="--peer parse"
    [[ $peer == parse && $step == webhook* ]] && extra="$extra --parse-webhook-key $WEBHOOK_KEY"
    local max=${args##*--max-seconds }
    # The load generator stops itself at --max-seconds; `timeout` is a backstop.
    # shellcheck disable=SC2086
    timeout --kill-after=5 $((max + 20)) taskset -c 1 "$LOADGEN" $args $extra \
        --target "http://127.0.0.1:$port" --admin-token $ADMIN_TOKEN --account-email $EMAIL \
        --account-password $PASSWORD --server-pid "$SERVER_PID" --label "$peer" --json >"$out.txt" 2>&1 ||
        echo "   (exit $?: incomplete run, partial figures kept)" >&2
    kill -0 "$SERVER_PID" 2>/dev/null || echo "   (the server had exited by the end of the step; see $out.server.log)" >&2
    grep '^{' "$out.txt" | tail -1 >"$out.json" || true
    sed -e '/^{/d' -e 's/^/   /' "$out.txt" >&2
    stop_server
    [[ $peer == parse ]] && drop_parse_db
    sleep 2 # let TIME_WAIT and the kernel's socket cleanup settle
}

# --- table -----------------------------------------------------------------
table() {
RESULTS_DIR=$RESULTS_DIR STEPS=$STEPS node - <<'EOF'
const fs = require('node:fs');
const path = require('node:path');
const dir = process.env.RESULTS_DIR;
// [step, JSON key, label, which direction is better]
const rows = [
  ['unicast', 'latency_p50_us', 'create → frame p50 µs', 'lower'],
  ['unicast', 'latency_p90_us', 'create → frame p90 µs', 'lower'],
  ['unicast', 'latency_p99_us', 'create → frame p99 µs', 'lower'],
  ['unicast', 'latency_max_us', 'create → frame max µs', 'lower'],
  ['unicast', 'creates_per_s', 'creates/s achieved', 'higher'],
  ['unicast', 'create_rtt_p99_us', 'create round trip p99 µs', 'lower'],
  ['unicast', 'server_cpu_us_per_delivery', 'server CPU µs per create', 'lower'],
  ['unicast', 'missing', 'missing frames', 'lower'],
  ['unicast-low', 'latency_p50_us', 'create → frame p50 µs', 'lower'],
  ['unicast-low', 'latency_p99_us', 'create → frame p99 µs', 'lower'],
  ['unicast-low', 'latency_max_us', 'create → frame max µs', 'lower'],
  ['unicast-low', 'creates_per_s', 'creates/s achieved', 'higher'],
  ['public', 'latency_p50_us', 'create → frame p50 µs', 'lower'],
  ['public', 'latency_p99_us', 'create → frame p99 µs', 'lower'],
  ['public', 'deliveries_per_s', 'deliveries/s', 'higher'],
  ['public', 'creates_per_s', 'creates/s achieved', 'higher'],
  ['public', 'missing', 'missing frames', 'lower'],
  ['fanout', 'deliveries_per_s', 'deliveries/s (steady window)', 'higher'],
  ['fanout', 'offered_deliveries_per_s', 'deliveries/s offered', 'higher'],
  ['fanout', 'server_cpu_us_per_delivery', 'server CPU µs/delivery', 'lower'],
  ['fanout', 'latency_p50_us', 'create → frame p50 µs (sampled)', 'lower'],
  ['fanout', 'latency_p99_us', 'create → frame p99 µs (sampled)', 'lower'],
  ['fanout', 'missing', 'missing frames', 'lower'],
  ['webhooks', 'deliveries_per_s', 'deliveries/s', 'higher'],
  ['webhooks', 'deliveries_during_creates_per_s', 'deliveries/s while creates go on', 'higher'],
  ['webhooks', 'creates_per_s', 'creates/s', 'higher'],
  ['webhooks', 'server_cpu_us_per_delivery', 'server CPU µs/delivery', 'lower'],
  ['webhooks', 'missing', 'missing deliveries', 'lower'],
  ['webhooks', 'bad_proof', 'bad signatures/keys', 'lower'],
  ['webhook-lag', 'lag_p50_us', 'create → delivery p50 µs', 'lower'],
  ['webhook-lag', 'lag_p99_us', 'create → delivery p99 µs', 'lower'],
  ['webhook-lag', 'lag_max_us', 'create → delivery max µs', 'lower'],
  ['webhook-lag', 'creates_per_s', 'creates/s achieved', 'higher'],
  ['webhook-lag', 'missing', 'missing deliveries', 'lower'],
];
const runs = (peer, step) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${peer}.${step}.`) && f.endsWith('.json'))
    .sort()
    .flatMap((f) => {
      try {
        return [JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))];
      } catch {
        return [];
      }
    });
const median = (values) => {
  const v = values.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const fmt = (v) =>
  v === undefined || v === null ? 'n/a' : Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) >= 100 ? 0 : 2);
const cell = (all, key) => {
  const values = all.map((r) => r[key]);
  const m = median(values);
  const incomplete = all.some((r) => r.complete === false) ? '*' : '';
  const each = values.length > 1 ? ` (${values.map(fmt).join(' / ')})` : '';
  return [m, `${fmt(m)}${m === undefined ? '' : incomplete}${each}`];
};
const wanted = process.env.STEPS.split(/\s+/);
console.log('| step | metric | updraft | parse | ratio (updraft/parse) |');
console.log('|---|---|---:|---:|---:|');
for (const [step, key, label, better] of rows) {
  if (!wanted.includes(step)) continue;
  const [uv, u] = cell(runs('updraft', step), key);
  const [pv, p] = cell(runs('parse', step), key);
  const r = typeof uv === 'number' && typeof pv === 'number' && pv !== 0 ? uv / pv : undefined;
  const ratio = r === undefined ? 'n/a' : r > 0 && r < 0.1 ? r.toPrecision(2) : r.toFixed(2);
  console.log(`| ${step} | ${label} (${better} is better) | ${u} | ${p} | ${ratio} |`);
}
console.log('\nMedians over the rounds (each round in brackets). `*` = a round was incomplete (deadline, errors or');
console.log('missing deliveries); see the per-run logs in the results directory.');
EOF
}

# The whole run is one function, read before anything runs: editing this file during a run cannot derail it.
main() {
    if [[ -n ${TABLE_ONLY:-} ]]; then
        table
        return
    fi
    # --- build -----------------------------------------------------------------
    if [[ -z ${SKIP_BUILD:-} ]]; then
        (cd "$ROOT" && cargo build --release -p updraft-server -p updraft-loadgen) ||
            { echo "warning: workspace build failed; building the load generator alone" >&2
              (cd "$ROOT" && cargo build --release -p updraft-loadgen); }
    fi
    [[ -x $LOADGEN ]] || { echo "error: $LOADGEN missing" >&2; exit 1; }
    [[ -x $UPDRAFT ]] || { echo "error: $UPDRAFT missing" >&2; exit 1; }
    if [[ " $PEERS " == *" parse "* ]]; then
        [[ -d $PARSE_PEER/node_modules/parse-server ]] ||
            (cd "$PARSE_PEER" && npm ci --no-audit --no-fund --loglevel=error)
        pg_isready -q -h 127.0.0.1 || { echo "error: no PostgreSQL on 127.0.0.1:5432 (needed by the Parse peer)" >&2; exit 1; }
    fi

    # Rounds interleave the servers so that a noisy moment of the machine hits both alike.
    for round in $(seq "$REPEAT"); do
        for step in $STEPS; do
            for peer in $PEERS; do
                run_one "$peer" "$step" "$round"
            done
        done
    done
    table
}

main "$@"
exit $?
