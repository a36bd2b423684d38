#!/usr/bin/env bash
# Frames beside an EDS write burst (issue 18, "the reverse"): the latency of paced broadcasts to SOCKETS sockets,
# first alone, then while CREATORS clients create EDS objects at CREATE_RATE per second (open loop). Medians over
# ROUNDS rounds, each on a fresh server.
#
# Layouts (LAYOUT): `one-core` (default): the server on CPU 0, the clients on CPU 1, the socket-reading client at
# real-time priority (chrt -f), so that the creating client does not delay its reads. `two-cores`: server and
# clients on both CPUs, unpinned (the socket-reading client still at real-time priority).
#
# Usage: bench/run-reverse.sh > table.md
#   knobs: SOCKETS (10000) RATE (2 broadcasts/s) CREATE_RATE (4000) CREATORS (32) SECONDS_EACH (12) ROUNDS (3)
#          LAYOUT (one-core | two-cores) SKIP_BUILD=1 UPDRAFT_BIN
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SOCKETS=${SOCKETS:-10000}
RATE=${RATE:-2}
CREATE_RATE=${CREATE_RATE:-4000}
CREATORS=${CREATORS:-32}
SECONDS_EACH=${SECONDS_EACH:-12}
ROUNDS=${ROUNDS:-3}
LAYOUT=${LAYOUT:-one-core}
PORT=18482
UPDRAFT=${UPDRAFT_BIN:-$TARGET_DIR/release/updraft}
layout_setup

# Paced broadcasts to every socket; prints the loadgen's JSON line.
frames() {
    chrt -f 50 taskset -c $CLIENT_CPUS "$LOADGEN" --target "http://127.0.0.1:$PORT" --admin-token $ADMIN_TOKEN --json \
        --max-seconds 300 latency --everyone --sockets "$SOCKETS" --rate "$RATE" --seconds "$SECONDS_EACH" \
        --publishers 1 --grace-seconds 3 2>/dev/null | tail -1
}

RESULTS=$WORK/results.jsonl
for round in $(seq "$ROUNDS"); do
    log "== round $round"
    start_fresh_server
    alone=$(frames)
    stop_server
    start_fresh_server
    # The burst starts first and outlasts the broadcasts (their sockets connect within it too).
    taskset -c $CLIENT_CPUS "$LOADGEN" --target "http://127.0.0.1:$PORT" --json --max-seconds 300 \
        creates --rate "$CREATE_RATE" --creators "$CREATORS" --seconds $((SECONDS_EACH + 20)) >"$WORK/creates.out" 2>&1 &
    creator=$!
    sleep 1
    loaded=$(frames)
    wait "$creator" || log "   the create burst was incomplete"
    creates=$(tail -1 "$WORK/creates.out")
    stop_server
    python3 - "$alone" "$loaded" "$creates" >>"$RESULTS" <<'PY'
import json, sys
a, l, c = (json.loads(x) for x in sys.argv[1:])
row = {"alone_p50": a["latency_p50_us"] / 1e3, "alone_p99": a["latency_p99_us"] / 1e3,
       "burst_p50": l["latency_p50_us"] / 1e3, "burst_p99": l["latency_p99_us"] / 1e3,
       "lost": a["lost"] + l["lost"], "creates_per_s": c["creates_per_s"], "create_p99": c["create_rtt_p99_us"] / 1e3}
print(json.dumps(row))
print(f"   frames p99 {row['alone_p99']:.1f} -> {row['burst_p99']:.1f} ms; {row['creates_per_s']:.0f} creates/s", file=sys.stderr)
PY
done

python3 - "$RESULTS" "$LAYOUT" "$SOCKETS" "$RATE" "$CREATE_RATE" "$CREATORS" <<'PY'
import json, statistics, sys
path, layout, sockets, rate, create_rate, creators = sys.argv[1:]
rows = [json.loads(line) for line in open(path)]
m = lambda k: statistics.median(r[k] for r in rows)
print(f"Layout `{layout}`, {rate} broadcasts/s to {sockets} sockets, a burst of {create_rate} creates/s offered by "
      f"{creators} clients; medians of {len(rows)} rounds.\n")
print("| frame p50 ms (alone → burst) | frame p99 ms (alone → burst) | creates/s in the burst | create p99 ms | lost |")
print("|---:|---:|---:|---:|---:|")
print(f"| {m('alone_p50'):.1f} → {m('burst_p50'):.1f} | {m('alone_p99'):.1f} → {m('burst_p99'):.1f} | "
      f"{m('creates_per_s'):,.0f} | {m('create_p99'):.1f} | {sum(r['lost'] for r in rows)} |")
PY
