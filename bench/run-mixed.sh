#!/usr/bin/env bash
# Push fan-out beside EDS writes (issue 18): EDS creates at a fixed open-loop rate, first alone, then while the
# server delivers paced broadcasts to SOCKETS sockets at each rate of BROADCAST_RATES per second. Reports, per
# rate: create p50/p99 (and the ratio of the loaded p99 to the unloaded one of the same round), broadcast frame
# latency p50/p99 and deliveries/s. Medians over ROUNDS rounds, each on a fresh server.
#
# Layouts (LAYOUT): `one-core` (default): the server on CPU 0, every client on CPU 1; the creating client at
# real-time priority (chrt -f), so that it is never the one that delays a create. `two-cores`: the server on
# both cores, unpinned, the clients too (the creating client still at real-time priority).
#
# Usage: bench/run-mixed.sh > table.md
#   knobs: SOCKETS (10000) BROADCAST_RATES ("1 5 10 20") CREATE_RATE (200) CREATORS (4) SECONDS_EACH (10)
#          ROUNDS (3) LAYOUT (one-core | two-cores) SKIP_BUILD=1 UPDRAFT_BIN
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOCKETS=${SOCKETS:-10000}
BROADCAST_RATES=${BROADCAST_RATES:-1 5 10 20}
CREATE_RATE=${CREATE_RATE:-200}
CREATORS=${CREATORS:-4}
SECONDS_EACH=${SECONDS_EACH:-10}
ROUNDS=${ROUNDS:-3}
LAYOUT=${LAYOUT:-one-core}
PORT=18480
METRICS_PORT=18481
ADMIN_TOKEN=bench-admin
source "$ROOT/bench/mixed-common.sh"

# Sockets open now (0 before the first one opens, when the gauge is not yet exported).
connected() {
    curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^updraft_mws_sockets_connected /{n = int($2)} END {print n + 0}'
}

# Creates alone, at real-time priority on the client CPUs; prints the loadgen's JSON line.
creates() {
    chrt -f 50 taskset -c $CLIENT_CPUS "$LOADGEN" --target "http://127.0.0.1:$PORT" --json --max-seconds 120 \
        creates --rate "$CREATE_RATE" --creators "$CREATORS" --seconds "$SECONDS_EACH" | tail -1
}

RESULTS=$WORK/results.jsonl
for round in $(seq "$ROUNDS"); do
    for rate in $BROADCAST_RATES; do
        log "== round $round, $rate broadcasts/s to $SOCKETS sockets"
        start_server --metrics-listen 127.0.0.1:$METRICS_PORT
        unloaded=$(creates)
        # The broadcasts start once the sockets are connected and run past the loaded creates.
        taskset -c $CLIENT_CPUS "$LOADGEN" --target "http://127.0.0.1:$PORT" --admin-token $ADMIN_TOKEN --json \
            --max-seconds 300 latency --everyone --sockets "$SOCKETS" --rate "$rate" \
            --seconds $((SECONDS_EACH + 8)) --publishers 2 --grace-seconds 5 >"$WORK/broadcast.out" 2>&1 &
        broadcaster=$!
        for _ in $(seq 600); do (( $(connected) >= SOCKETS )) && break; sleep 0.2; done
        sleep 3 # into the paced broadcasts
        loaded=$(creates)
        wait "$broadcaster" || log "   the broadcast run was incomplete: $(grep -o '"error":"[^"]*"' "$WORK/broadcast.out" || true)"
        broadcast=$(tail -1 "$WORK/broadcast.out")
        python3 - "$round" "$rate" "$unloaded" "$loaded" "$broadcast" >>"$RESULTS" <<'PY'
import json, sys
round_, rate, unloaded, loaded, broadcast = sys.argv[1:]
u, l, b = json.loads(unloaded), json.loads(loaded), json.loads(broadcast)
row = {"round": int(round_), "rate": int(rate),
       "unloaded_p50": u["create_rtt_p50_us"] / 1e3, "unloaded_p99": u["create_rtt_p99_us"] / 1e3,
       "loaded_p50": l["create_rtt_p50_us"] / 1e3, "loaded_p99": l["create_rtt_p99_us"] / 1e3,
       "create_errors": u["create_errors"] + l["create_errors"],
       "frame_p50": b.get("latency_p50_us", 0) / 1e3, "frame_p99": b.get("latency_p99_us", 0) / 1e3,
       "deliveries_per_s": b.get("deliveries_per_s", 0), "lost": b.get("lost", -1)}
print(json.dumps(row))
print(f"   creates p99 {row['unloaded_p99']:.2f} -> {row['loaded_p99']:.2f} ms; frames p99 {row['frame_p99']:.1f} ms; "
      f"{row['deliveries_per_s']:.0f} deliveries/s; lost {row['lost']}", file=sys.stderr)
PY
        stop_server
    done
done

python3 - "$RESULTS" "$LAYOUT" "$SOCKETS" "$CREATE_RATE" <<'PY'
import json, statistics, sys
path, layout, sockets, create_rate = sys.argv[1:]
rows = [json.loads(line) for line in open(path)]
print(f"Layout `{layout}`, {sockets} sockets, {create_rate} creates/s; medians of {len({r['round'] for r in rows})} rounds.\n")
print("| broadcasts/s | deliveries/s | create p50 ms (alone → loaded) | create p99 ms (alone → loaded) | p99 ratio | frame p50 ms | frame p99 ms | lost |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for rate in sorted({r["rate"] for r in rows}):
    rs = [r for r in rows if r["rate"] == rate]
    m = lambda k: statistics.median(r[k] for r in rs)
    ratio = statistics.median(r["loaded_p99"] / r["unloaded_p99"] for r in rs)
    print(f"| {rate} | {m('deliveries_per_s'):,.0f} | {m('unloaded_p50'):.2f} → {m('loaded_p50'):.2f} | "
          f"{m('unloaded_p99'):.2f} → {m('loaded_p99'):.2f} | {ratio:.1f}× | {m('frame_p50'):.1f} | {m('frame_p99'):.1f} | "
          f"{sum(r['lost'] for r in rs)} |")
PY
