#!/usr/bin/env bash
# Many nodes, many sockets: NODES Updraft nodes on one bus, PER_NODE sockets on each (one load generator process
# per node, as the open-file limit is per process), and one broadcast after another reaching all of them.
# Reports the sockets held, deliveries/s over the whole cluster (wall clock, from the first publish to the last
# frame anywhere) and each node's memory per socket.
#
# Nothing is pinned: 2 cores carry every node, every load generator and the bus server.
#
# PEER=node-ws runs the same load on the peer instead: NODES processes of bench/peers/node-ws (the `ws` package)
# sharing Redis as the original MWS did (BUS=redis).
#
# Usage: bench/run-cluster-fleet.sh
# Knobs (environment): BUS (redis|nats|local) PEER (updraft|node-ws) NODES PER_NODE MESSAGES SIZE SKIP_BUILD=1
#                      RESULTS_DIR
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
UPDRAFT=${BIN:-$TARGET_DIR/release/updraft}

BUS=${BUS:-redis}
PEER=${PEER:-updraft}
NODES=${NODES:-8}
PER_NODE=${PER_NODE:-19000}
MESSAGES=${MESSAGES:-10}
SIZE=${SIZE:-100}
FIRST_PORT=18200
METRICS_TOKEN=bench-metrics

raise_open_files "$PER_NODE"
init_results_dir updraft-fleet
bench_traps
build_release_bins

case $BUS in
    redis) BUS_URL=redis://127.0.0.1:6379 ;;
    nats) BUS_URL=nats://127.0.0.1:4222 ;;
    # One node with the in-process bus (NODES=1): the figures to hold a node of the cluster against.
    local) BUS_URL="" ;;
    *) echo "BUS must be redis, nats or local" >&2; exit 2 ;;
esac
BUS_ARGS=()
[[ -z $BUS_URL ]] || BUS_ARGS=(--bus "$BUS_URL")
case $PEER in
    updraft) READY_PATH=/readyz ;;
    node-ws)
        [[ $BUS == redis ]] || { echo "the node-ws peer scales over Redis only (BUS=redis)" >&2; exit 2; }
        peer_ready node-ws redis
        READY_PATH=/v1/websocket_uri
        ;;
    *) echo "PEER must be updraft or node-ws" >&2; exit 2 ;;
esac

PIDS=()
DIRS=()
LOADGENS=()
cleanup_more() {
    local pid
    for pid in "${LOADGENS[@]}" "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${LOADGENS[@]}" "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "${DIRS[@]}"
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
port_of() { echo $((FIRST_PORT + $1)); }

log "== $NODES nodes on ${BUS_URL:-the in-process bus}"
for i in $(seq 0 $((NODES - 1))); do
    dir=$(mktemp -d -t updraft-node.XXXXXX)
    DIRS+=("$dir")
    if [[ $PEER == node-ws ]]; then
        PORT=$(port_of "$i") REDIS_URL=$BUS_URL node "$ROOT/bench/peers/node-ws/server.js" >"$RESULTS_DIR/node.$i.log" 2>&1 &
    else
        ACCESS_CONTROL=none SECURITY_TOKEN=$ADMIN_TOKEN "$UPDRAFT" serve --listen "127.0.0.1:$(port_of "$i")" \
            --data-dir "$dir" "${BUS_ARGS[@]}" --metrics-token "$METRICS_TOKEN" >"$RESULTS_DIR/node.$i.log" 2>&1 &
    fi
    PIDS+=($!)
done
for i in $(seq 0 $((NODES - 1))); do
    wait_http "${PIDS[$i]}" 300 "http://127.0.0.1:$(port_of "$i")$READY_PATH" || not_up "node $i" "$RESULTS_DIR/node.$i.log"
done
BASE_RSS=()
for i in $(seq 0 $((NODES - 1))); do BASE_RSS+=("$(rss_kb "${PIDS[$i]}")"); done

connected() {
    local total=0 i n
    if [[ $PEER == node-ws ]]; then
        # The peer has no metrics: its established connections (sockets, and a few of the URI fetches).
        for i in $(seq 0 $((NODES - 1))); do
            total=$((total + $(ss -Htn state established "sport = :$(port_of "$i")" | wc -l)))
        done
        echo "$total"
        return
    fi
    for i in $(seq 0 $((NODES - 1))); do
        n=$(curl -sf -H "Authorization: Bearer $METRICS_TOKEN" "http://127.0.0.1:$(port_of "$i")/metrics" |
            awk '/^updraft_mws_sockets_connected / {print $2}')
        total=$((total + ${n:-0}))
    done
    echo "$total"
}

log "== $((NODES - 1)) listening load generators, $PER_NODE sockets each"
for i in $(seq 1 $((NODES - 1))); do
    "$LOADGEN" --target "http://127.0.0.1:$(port_of "$i")" --admin-token "$ADMIN_TOKEN" --json --max-seconds 600 \
        --threads 1 broadcast --sockets "$PER_NODE" --messages "$MESSAGES" --size "$SIZE" --listen-only \
        --stall-seconds 300 >"$RESULTS_DIR/listener.$i.txt" 2>&1 &
    LOADGENS+=($!)
done
want=$(((NODES - 1) * PER_NODE))
for _ in $(seq 600); do
    now=$(connected)
    ((now >= want)) && break
    sleep 1
done
log "   $(connected) sockets open"

# Sockets open and each node's RSS, at their highest while the publisher runs (listeners close their sockets as
# soon as they have every frame).
sample() {
    local most=0 now i
    local -a rss=()
    for i in $(seq 0 $((NODES - 1))); do rss+=(0); done
    while [[ ! -e $RESULTS_DIR/done ]]; do
        now=$(connected)
        ((now > most)) && most=$now
        for i in $(seq 0 $((NODES - 1))); do
            now=$(rss_kb "${PIDS[$i]}")
            ((now > rss[i])) && rss[i]=$now
        done
        echo "$most ${rss[*]}" >"$RESULTS_DIR/peak"
        sleep 0.5
    done
}
sample &
SAMPLER=$!
log "== the publishing load generator: $PER_NODE sockets on node 0, $MESSAGES broadcasts of $SIZE bytes"
"$LOADGEN" --target "http://127.0.0.1:$(port_of 0)" --admin-token "$ADMIN_TOKEN" --json --max-seconds 600 \
    --threads 1 broadcast --sockets "$PER_NODE" --messages "$MESSAGES" --size "$SIZE" --publishers 1 \
    >"$RESULTS_DIR/publisher.txt" 2>&1 || true
touch "$RESULTS_DIR/done"
wait "$SAMPLER"
read -r TOTAL_SOCKETS peak_rss <<<"$(cut -d' ' -f1 "$RESULTS_DIR/peak") $(cut -d' ' -f2- "$RESULTS_DIR/peak" | tr ' ' ',')"
IFS=, read -r -a NODE_RSS <<<"$peak_rss"
for pid in "${LOADGENS[@]}"; do wait "$pid" 2>/dev/null || true; done
LOADGENS=()

python3 - "$RESULTS_DIR" "$NODES" "$PER_NODE" "$MESSAGES" "$TOTAL_SOCKETS" "${BASE_RSS[*]}" "${NODE_RSS[*]}" "$PEER on $BUS" <<'PY'
import json, statistics, sys
d, nodes, per_node, messages, total, base, after, bus = sys.argv[1:9]
nodes, per_node, messages, total = int(nodes), int(per_node), int(messages), int(total)
def last_json(path):
    lines = [l for l in open(path) if l.startswith("{")]
    return json.loads(lines[-1]) if lines else {}
runs = [last_json(f"{d}/publisher.txt")] + [last_json(f"{d}/listener.{i}.txt") for i in range(1, nodes)]
deliveries = sum(r.get("deliveries", 0) for r in runs)
expected = nodes * per_node * messages
start = runs[0].get("t0_unix_ms")
last = max((r.get("last_delivery_unix_ms", 0) for r in runs), default=0)
seconds = (last - start) / 1000 if start and last > start else float("nan")
per_socket = [(int(a) - int(b)) * 1024 / per_node for a, b in zip(after.split(), base.split())]
# Every socket that got every broadcast was open when the first one went out.
reached = deliveries // messages if messages else 0
print(f"| bus | nodes | sockets reached by every broadcast | deliveries / expected | cluster deliveries/s | node RSS a socket, median (peak) |")
print(f"|---|---:|---:|---:|---:|---:|")
print(f"| {bus} | {nodes} | {reached:,} | {deliveries:,} / {expected:,} | {deliveries / seconds:,.0f} | {statistics.median(per_socket):,.0f} B |")
PY
