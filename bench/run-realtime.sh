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
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
UPDRAFT=${UPDRAFT_BIN:-$TARGET_DIR/release/updraft}

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
WEBHOOK_KEY=bench-webhook-key
UPDRAFT_PORT=18380
PARSE_PORT=18390
PARSE_DB=parse_realtime
PEERS="updraft"
[[ $PEER == 1 ]] && PEERS="updraft parse"
PEERS=${SERVERS:-$PEERS}

# 19k sockets on each side need the full open-file allowance.
raise_open_files "$FANOUT_SOCKETS"
init_results_dir updraft-realtime

drop_parse_db() { drop_db "$PARSE_DB" >/dev/null 2>&1 || true; }
# At exit, after stop_server (bench_traps).
# shellcheck disable=SC2317 # called by bench_exit
cleanup_more() {
    if [[ " $PEERS " == *" parse "* ]]; then drop_parse_db; fi
}
bench_traps

# --- servers ---------------------------------------------------------------
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
    if port_open "$(peer_port "$peer")"; then
        echo "error: something already listens on port $(peer_port "$peer")" >&2
        return 1
    fi
    # Inserts wait on fsync: let earlier disk work (PostgreSQL checkpoints, a previous step's files) finish first.
    settle 2
    SERVER_DIR=$(mktemp -d -t updraft-realtime-server.XXXXXX)
    case $peer in
        updraft)
            ACCESS_CONTROL=none SECURITY_TOKEN=$ADMIN_TOKEN \
                serve_updraft "$UPDRAFT" 0 $UPDRAFT_PORT "$SERVER_DIR" "${BENCH_ADMIN[@]}" >"$log" 2>&1
            ;;
        parse)
            drop_parse_db
            pg -c "CREATE DATABASE $PARSE_DB" postgres
            serve_parse "$SERVER_DIR" "$SERVER_DIR/parse-logs" $PARSE_PORT \
                DATABASE_URI=postgres://postgres@127.0.0.1:5432/$PARSE_DB LIVE_QUERY_CLASSES=Todo WEBHOOK_KEY=$WEBHOOK_KEY \
                >"$log" 2>&1
            ;;
    esac
    SERVER_PID=$!
    local health=http://127.0.0.1:$UPDRAFT_PORT/healthz
    [[ $peer == parse ]] && health=http://127.0.0.1:$PARSE_PORT/parse/health
    wait_http "$SERVER_PID" 300 "$health" -H 'X-Parse-Application-Id: bench' || not_up "$peer" "$log"
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
    # shellcheck disable=SC2086
    loadgen_run "$out" $args $extra --target "http://127.0.0.1:$port" --admin-token $ADMIN_TOKEN \
        --account-email $BENCH_EMAIL --account-password $BENCH_PASSWORD --server-pid "$SERVER_PID" --label "$peer" --json
    kill -0 "$SERVER_PID" 2>/dev/null || echo "   (the server had exited by the end of the step; see $out.server.log)" >&2
    loadgen_figures "$out"
    stop_server
    [[ $peer == parse ]] && drop_parse_db
    sleep 2 # let TIME_WAIT and the kernel's socket cleanup settle
}

# --- table -----------------------------------------------------------------
table() {
STEPS=$STEPS node_table <<'EOF'
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
    build_release_bins
    [[ -x $UPDRAFT ]] || { echo "error: $UPDRAFT missing" >&2; exit 1; }
    if [[ " $PEERS " == *" parse "* ]]; then
        peer_ready parse-server parse-server
        pg_isready -q -h 127.0.0.1 || { echo "error: no PostgreSQL on 127.0.0.1:5432 (needed by the Parse peer)" >&2; exit 1; }
    fi

    interleave "$REPEAT" "$STEPS" "$PEERS"
    table
}

main "$@"
exit $?
