#!/usr/bin/env bash
# Tagged messages across nodes over NATS: what reaches the nodes that hold no socket with the tag.
#
# Three nodes on the machine's NATS (127.0.0.1:4222), all pinned to CPU 0: node A takes the publishes, node B holds
# SOCKETS sockets with TAGS tags (`tagged`: socket i has tag t{i % TAGS}, each message to one random tag), node C
# holds SOCKETS untagged sockets of the same gateway (`idle`, held for the whole run). Both load generators run
# on CPU 1. Per round: B's tagged deliveries/s and what each node heard from the bus
# (`updraft_bus_messages_received_total`) and spent (CPU seconds) meanwhile. BINS lists the server builds to
# compare, alternated round by round.
#
# Usage: BINS="/path/a/updraft /path/b/updraft" bench/run-cluster-tags.sh
# Knobs (environment): BINS SOCKETS TAGS MESSAGES ROUNDS SKIP_BUILD=1 RESULTS_DIR
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BINS=${BINS:-$TARGET_DIR/release/updraft}
SOCKETS=${SOCKETS:-2000}
TAGS=${TAGS:-16}
MESSAGES=${MESSAGES:-5000}
ROUNDS=${ROUNDS:-3}
PORTS=(18190 18191 18192)

raise_open_files "$((SOCKETS * 2))"
init_results_dir updraft-cluster-tags
bench_traps
build_release_bins

HOLDER=""
cleanup_more() {
    stop_pid "$HOLDER"
    stop_nodes
}

# received PORT: the messages that node heard from the bus so far.
received() {
    curl -sf -H "Authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$1/metrics" |
        awk '/^updraft_bus_messages_received_total/ {n += $2} END {print n + 0}'
}

run_one() {
    local bin=$1 label=$2 round=$3 out=$RESULTS_DIR/$2.$3 i
    for i in 0 1 2; do
        start_node "$bin" "${PORTS[$i]}" "$out.node$i.log" --bus nats://127.0.0.1:4222
    done
    log "== $label, round $round: $SOCKETS sockets with $TAGS tags on B, $SOCKETS untagged on C, $MESSAGES tagged messages through A"
    taskset -c 1 "$LOADGEN" --target "http://127.0.0.1:${PORTS[2]}" --admin-token "$ADMIN_TOKEN" --json \
        --max-seconds 200 idle --sockets "$SOCKETS" --settle-seconds 180 >"$out.idle.txt" 2>&1 &
    HOLDER=$!
    sleep 5
    local before=() after=() ticks_before=() ticks_after=()
    for i in 0 1 2; do before+=("$(received "${PORTS[$i]}")"); ticks_before+=("$(cpu_ticks "${NODES[$i]}")"); done
    loadgen_run "$out" --target "http://127.0.0.1:${PORTS[1]}" --admin-token "$ADMIN_TOKEN" --json --max-seconds 120 \
        tagged --sockets "$SOCKETS" --tags "$TAGS" --messages "$MESSAGES" --publishers 4 \
        --publish-target "http://127.0.0.1:${PORTS[0]}"
    loadgen_figures "$out"
    for i in 0 1 2; do after+=("$(received "${PORTS[$i]}")"); ticks_after+=("$(cpu_ticks "${NODES[$i]}")"); done
    python3 - "$out.json" "${before[@]}" "${after[@]}" "${ticks_before[@]}" "${ticks_after[@]}" <<'PY'
import json, sys
path, v = sys.argv[1], [float(x) for x in sys.argv[2:]]
figures = json.load(open(path)) if open(path).read().strip() else {}
figures["heard"] = [v[3 + i] - v[i] for i in range(3)]
figures["cpu_s"] = [(v[9 + i] - v[6 + i]) / 100 for i in range(3)]
json.dump(figures, open(path, "w"))
PY
    stop_pid "$HOLDER"
    HOLDER=""
    stop_nodes
    sleep 1
}

for round in $(seq "$ROUNDS"); do
    n=0
    for bin in $BINS; do
        n=$((n + 1))
        run_one "$bin" "build$n" "$round"
    done
done

echo
echo "| build | tagged deliveries/s on B | bus messages heard by A / B / C | CPU s of A / B / C | missing |"
echo "|---|---:|---|---|---:|"
n=0
for bin in $BINS; do
    n=$((n + 1))
    python3 - "$RESULTS_DIR" "build$n" "$ROUNDS" "$bin" <<'PY'
import json, statistics, sys
d, label, rounds, bin_ = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
figs = []
for r in range(1, rounds + 1):
    try:
        figs.append(json.load(open(f"{d}/{label}.{r}.json")))
    except Exception:
        pass
rates = [f.get("deliveries_per_s", 0) for f in figs]
med = lambda xs: statistics.median(xs) if xs else 0
heard = [med([f["heard"][i] for f in figs if "heard"in f]) for i in range(3)]
cpu = [med([f["cpu_s"][i] for f in figs if "cpu_s" in f]) for i in range(3)]
missing = sum(f.get("missing", 0) for f in figs)
print(f"| {bin_} | {med(rates):,.0f} ({', '.join(f'{x:,.0f}' for x in rates)}) | "
      f"{' / '.join(f'{x:,.0f}' for x in heard)} | {' / '.join(f'{x:.2f}' for x in cpu)} | {missing} |")
PY
done
