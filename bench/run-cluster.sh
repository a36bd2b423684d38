#!/usr/bin/env bash
# Broadcast across nodes: sockets open on node B, messages published on node A, carried by the bus (`--bus`),
# beside one node with the in-process bus (sockets and publishing on the same node) in the same run.
#
# Both nodes are pinned to CPU 0 and the load generator to CPU 1; Redis and NATS are the machine's running
# servers (127.0.0.1:6379 and :4222), unpinned. Prints deliveries/s per bus, the median of ROUNDS.
#
# Usage: bench/run-cluster.sh
# Knobs (environment): SOCKETS MESSAGES SIZE ROUNDS BUSES SKIP_BUILD=1 RESULTS_DIR
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
UPDRAFT=${BIN:-$TARGET_DIR/release/updraft}

SOCKETS=${SOCKETS:-10000}
MESSAGES=${MESSAGES:-100}
SIZE=${SIZE:-100}
ROUNDS=${ROUNDS:-3}
BUSES=${BUSES:-"local redis nats"}
PORT_A=18180
PORT_B=18181

raise_open_files "$SOCKETS"
init_results_dir updraft-cluster
bench_traps
build_release_bins

cleanup_more() { stop_nodes; }

bus_url() {
    case $1 in
        local) echo local ;;
        redis) echo redis://127.0.0.1:6379 ;;
        nats) echo nats://127.0.0.1:4222 ;;
    esac
}

run_one() {
    local bus=$1 round=$2 out=$RESULTS_DIR/$1.$2 url publish=()
    url=$(bus_url "$bus")
    local args=()
    [[ $bus == local ]] || args=(--bus "$url")
    start_node "$UPDRAFT" $PORT_B "$out.b.log" "${args[@]}"
    if [[ $bus != local ]]; then
        start_node "$UPDRAFT" $PORT_A "$out.a.log" "${args[@]}"
        publish=(--publish-target "http://127.0.0.1:$PORT_A")
    fi
    log "== $bus, round $round: $SOCKETS sockets on one node, $MESSAGES broadcasts of $SIZE bytes"
    loadgen_run "$out" --target "http://127.0.0.1:$PORT_B" --admin-token "$ADMIN_TOKEN" --json --max-seconds 120 \
        broadcast --sockets "$SOCKETS" --messages "$MESSAGES" --size "$SIZE" --publishers 4 "${publish[@]}"
    loadgen_figures "$out"
    stop_nodes
    sleep 1
}

for round in $(seq "$ROUNDS"); do
    for bus in $BUSES; do run_one "$bus" "$round"; done
done

echo
echo "| bus | deliveries/s (median of $ROUNDS) | rounds | missing |"
echo "|---|---:|---|---:|"
for bus in $BUSES; do
    python3 - "$RESULTS_DIR" "$bus" "$ROUNDS" <<'PY'
import json, statistics, sys
d, bus, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
figs = []
for r in range(1, rounds + 1):
    try:
        figs.append(json.load(open(f"{d}/{bus}.{r}.json")))
    except Exception:
        pass
rates = [f.get("deliveries_per_s", 0) for f in figs]
missing = sum(f.get("missing", 0) for f in figs)
median = statistics.median(rates) if rates else 0
print(f"| {bus} | {median:,.0f} | {', '.join(f'{x:,.0f}' for x in rates)} | {missing} |")
PY
done
