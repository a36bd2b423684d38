#!/usr/bin/env bash
# Measures Updraft beside a Node.js `ws` gateway on the same MWS API and
# prints a Markdown comparison table.
#
# Each server is pinned to CPU 0 and the load generator to CPU 1, and each
# scenario runs against a freshly started server so that memory and CPU
# figures belong to that scenario alone. Every step is time-bounded.
#
# Usage: bench/run-mws.sh                   # both peers, all scenarios
#        PEERS=node-ws bench/run-mws.sh     # only one peer
#        SCENARIOS="idle latency" bench/run-mws.sh
# Knobs (environment): SOCKETS LAT_SOCKETS LAT_RATE LAT_SECONDS SIZE
#   BCAST_MESSAGES TAGS TAG_MESSAGES REPEAT SKIP_BUILD=1 RESULTS_DIR
#   BIN (the updraft binary) BUS (a `--bus` URL for updraft: one node on Redis or NATS)
# Each figure is the median over REPEAT rounds (default 3).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
UPDRAFT=${BIN:-$TARGET_DIR/release/updraft}
BUS_ARGS=()
[[ -z ${BUS:-} ]] || BUS_ARGS=(--bus "$BUS")
NODE_PEER=$ROOT/bench/peers/node-ws

PEERS=${PEERS:-"updraft node-ws"}
SCENARIOS=${SCENARIOS:-"idle broadcast tagged latency connect-rate"}
SOCKETS=${SOCKETS:-19000}
LAT_SOCKETS=${LAT_SOCKETS:-10000}
LAT_RATE=${LAT_RATE:-1000}
LAT_SECONDS=${LAT_SECONDS:-20}
SIZE=${SIZE:-100}
BCAST_MESSAGES=${BCAST_MESSAGES:-100}
TAGS=${TAGS:-100}
TAG_MESSAGES=${TAG_MESSAGES:-5000}
REPEAT=${REPEAT:-3}
UPDRAFT_PORT=18080
NODE_PORT=18090

# 19k sockets on each side need the full open-file allowance.
raise_open_files "$SOCKETS"
init_results_dir updraft-bench
bench_traps

# --- build -----------------------------------------------------------------
build_release_bins
if [[ " $PEERS " == *" node-ws "* ]]; then
    peer_ready node-ws ws
fi

# --- servers ---------------------------------------------------------------
peer_port() { [[ $1 == updraft ]] && echo $UPDRAFT_PORT || echo $NODE_PORT; }

start_server() {
    local peer=$1 log=$RESULTS_DIR/$1.$2.server.log
    case $peer in
        updraft)
            SERVER_DIR=$(mktemp -d -t updraft-data.XXXXXX)
            ACCESS_CONTROL=none SECURITY_TOKEN=$ADMIN_TOKEN \
                serve_updraft "$UPDRAFT" 0 $UPDRAFT_PORT "$SERVER_DIR" "${BUS_ARGS[@]}" >"$log" 2>&1
            ;;
        node-ws)
            PORT=$NODE_PORT taskset -c 0 node "$NODE_PEER/server.js" >"$log" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    wait_port "$(peer_port "$peer")" || not_up "$peer" "$log"
    # Updraft listens before it has joined a bus: the memory it takes to join is not the sockets'.
    [[ $peer != updraft ]] || wait_http "$SERVER_PID" 300 "http://127.0.0.1:$UPDRAFT_PORT/readyz" || not_up "$peer" "$log"
}

# Waits up to 30 s until the port accepts connections.
wait_port() {
    for _ in $(seq 300); do
        kill -0 "$SERVER_PID" 2>/dev/null || return 1
        if port_open "$1"; then return 0; fi
        sleep 0.1
    done
    return 1
}

# --- scenarios -------------------------------------------------------------
scenario_args() {
    case $1 in
        idle) echo "--sockets $SOCKETS --max-seconds 60" ;;
        broadcast) echo "--sockets $SOCKETS --messages $BCAST_MESSAGES --size $SIZE --publishers 4 --max-seconds 120" ;;
        tagged) echo "--sockets $SOCKETS --tags $TAGS --messages $TAG_MESSAGES --size $SIZE --publishers 4 --max-seconds 90" ;;
        latency) echo "--sockets $LAT_SOCKETS --rate $LAT_RATE --seconds $LAT_SECONDS --size $SIZE --max-seconds $((LAT_SECONDS + 60))" ;;
        connect-rate) echo "--sockets $SOCKETS --max-seconds 60" ;;
        *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

run_one() {
    local peer=$1 scenario=$2 round=$3 port args out=$RESULTS_DIR/$1.$2.$3
    port=$(peer_port "$peer")
    args=$(scenario_args "$scenario")
    echo "== $peer: $scenario (round $round of $REPEAT)" >&2
    start_server "$peer" "$scenario" || { stop_server; return 0; }
    # shellcheck disable=SC2086
    loadgen_run "$out" "$scenario" $args --target "http://127.0.0.1:$port" --admin-token $ADMIN_TOKEN \
        --server-pid "$SERVER_PID" --label "$peer" --json
    loadgen_figures "$out"
    stop_server
    sleep 2 # let TIME_WAIT and the kernel's socket cleanup settle
}

if [[ $PEERS == *updraft* && ! -x $UPDRAFT ]]; then
    echo "warning: $UPDRAFT not built; skipping updraft" >&2
    PEERS=${PEERS//updraft/}
fi
interleave "$REPEAT" "$SCENARIOS" "$PEERS"

# --- table -----------------------------------------------------------------
SCENARIOS=$SCENARIOS node_table <<'EOF'
// [scenario, JSON key, label, which direction is better]
const rows = [
  ['idle', 'rss_per_socket_bytes', 'server RSS bytes/socket', 'lower'],
  ['idle', 'connect_per_s', 'connects/s (incl. URI fetch)', 'higher'],
  ['broadcast', 'deliveries_per_s', 'deliveries/s', 'higher'],
  ['broadcast', 'server_cpu_us_per_delivery', 'server CPU µs/delivery', 'lower'],
  ['broadcast', 'missing', 'missing deliveries', 'lower'],
  ['tagged', 'deliveries_per_s', 'deliveries/s', 'higher'],
  ['tagged', 'server_cpu_us_per_delivery', 'server CPU µs/delivery', 'lower'],
  ['tagged', 'missing', 'missing deliveries', 'lower'],
  ['latency', 'latency_p50_us', 'p50 µs', 'lower'],
  ['latency', 'latency_p99_us', 'p99 µs', 'lower'],
  ['latency', 'latency_p999_us', 'p99.9 µs', 'lower'],
  ['latency', 'latency_max_us', 'max µs', 'lower'],
  ['latency', 'lost', 'lost messages', 'lower'],
  ['connect-rate', 'connect_per_s', 'connects/s (incl. URI fetch)', 'higher'],
  ['connect-rate', 'handshake_per_s', 'handshakes/s', 'higher'],
  ['connect-rate', 'close_s', 'close all, s', 'lower'],
];
const load = (peer, scenario) => {
  const all = runs(peer, scenario);
  if (all.length === 0) return null;
  const res = { complete: all.every((r) => r.complete !== false), rounds: all.length };
  for (const key of new Set(all.flatMap((r) => Object.keys(r)))) res[key] = median(all.map((r) => r[key]));
  return res;
};
const fmt = (v) => (v === undefined || v === null ? 'n/a' : Number.isInteger(v) ? String(v) : v.toFixed(v >= 100 ? 0 : 2));
const wanted = process.env.SCENARIOS.split(/\s+/);
console.log('| scenario | metric | updraft | node-ws | ratio (updraft/node-ws) |');
console.log('|---|---|---:|---:|---:|');
for (const [scenario, key, label, better] of rows) {
  if (!wanted.includes(scenario)) continue;
  const u = load('updraft', scenario);
  const n = load('node-ws', scenario);
  const uv = u?.[key];
  const nv = n?.[key];
  const mark = (r, v) => (r && r.complete === false && v !== undefined ? '*' : '');
  const ratio = typeof uv === 'number' && typeof nv === 'number' && nv !== 0 ? (uv / nv).toFixed(2) : 'n/a';
  console.log(`| ${scenario} | ${label} (${better} is better) | ${fmt(uv)}${mark(u, uv)} | ${fmt(nv)}${mark(n, nv)} | ${ratio} |`);
}
console.log(`\nMedians over each scenario's rounds. \`*\` = a round was incomplete (deadline, failures or missing deliveries); see the per-run logs.`);
EOF
