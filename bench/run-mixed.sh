#!/usr/bin/env bash
# Push fan-out beside EDS requests (issue 18): EDS creates, reads and lists (MIX, as creates:reads:lists) at a
# fixed open-loop rate, first alone, then while the server delivers paced broadcasts to SOCKETS sockets at each
# rate of BROADCAST_RATES per second, and paced tagged sends (TAGGED_RATE a second, each to one of TAGS tags over
# TAGGED_SOCKETS more sockets). Reports, per broadcast rate: create p50/p99 (and the ratio of the loaded p99 to the
# unloaded one of the same round), read and list p99, broadcast and tagged frame latency, and deliveries/s.
# Medians over ROUNDS rounds, each on a fresh server. The tagged sockets get the broadcasts too (they go to
# everyone), as an app's user sockets would; the tagged client times and counts only its own sends.
#
# Layouts (LAYOUT): `one-core` (default): the server on CPU 0, every client on CPU 1; the creating client at
# real-time priority (chrt -f), so that it is never the one that delays a create. `two-cores`: the server on
# both cores, unpinned, the clients too (the creating client still at real-time priority).
#
# Usage: bench/run-mixed.sh > table.md
#   knobs: SOCKETS (10000) BROADCAST_RATES ("1 5 10 20") CREATE_RATE (200 requests/s) CREATORS (4) MIX (2:1:1)
#          TAGGED_SOCKETS (1000) TAGS (100) TAGGED_RATE (100) SECONDS_EACH (10) ROUNDS (3)
#          LAYOUT (one-core | two-cores) SKIP_BUILD=1 UPDRAFT_BIN
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SOCKETS=${SOCKETS:-10000}
BROADCAST_RATES=${BROADCAST_RATES:-1 5 10 20}
CREATE_RATE=${CREATE_RATE:-200}
CREATORS=${CREATORS:-4}
MIX=${MIX:-2:1:1}
TAGGED_SOCKETS=${TAGGED_SOCKETS:-1000}
TAGS=${TAGS:-100}
TAGGED_RATE=${TAGGED_RATE:-100}
SECONDS_EACH=${SECONDS_EACH:-10}
ROUNDS=${ROUNDS:-3}
LAYOUT=${LAYOUT:-one-core}
PORT=18480
METRICS_PORT=18481
UPDRAFT=${UPDRAFT_BIN:-$TARGET_DIR/release/updraft}
layout_setup

# Sockets open now (0 before the first one opens, when the gauge is not yet exported).
connected() {
    curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^updraft_mws_sockets_connected /{n = int($2)} END {print n + 0}'
}

# EDS requests, at real-time priority on the client CPUs; prints the loadgen's JSON line.
creates() {
    chrt -f 50 taskset -c $CLIENT_CPUS "$LOADGEN" --target "http://127.0.0.1:$PORT" --json --max-seconds 120 \
        creates --rate "$CREATE_RATE" --creators "$CREATORS" --mix "$MIX" --seconds "$SECONDS_EACH" | tail -1
}

# Paced sends to SENT sockets, in the background, into $WORK/$1.out; the other arguments go to `latency`.
sends() {
    local out=$1
    shift
    taskset -c $CLIENT_CPUS "$LOADGEN" --target "http://127.0.0.1:$PORT" --admin-token $ADMIN_TOKEN --json \
        --max-seconds 300 latency --seconds $((SECONDS_EACH + 8)) --grace-seconds 5 "$@" >"$WORK/$out.out" 2>&1 &
}

RESULTS=$WORK/results.jsonl
for round in $(seq "$ROUNDS"); do
    for rate in $BROADCAST_RATES; do
        log "== round $round, $rate broadcasts/s to $SOCKETS sockets"
        start_fresh_server --metrics-listen 127.0.0.1:$METRICS_PORT
        unloaded=$(creates)
        # The sends start once the sockets are connected and run past the loaded requests.
        sends broadcast --everyone --sockets "$SOCKETS" --rate "$rate" --publishers 2
        broadcaster=$!
        sends tagged --tags "$TAGS" --sockets "$TAGGED_SOCKETS" --rate "$TAGGED_RATE" --publishers 2
        tagger=$!
        for _ in $(seq 600); do (( $(connected) >= SOCKETS + TAGGED_SOCKETS )) && break; sleep 0.2; done
        sleep 3 # into the paced sends
        loaded=$(creates)
        for sender in broadcast:$broadcaster tagged:$tagger; do
            wait "${sender#*:}" || log "   the ${sender%:*} run was incomplete: $(grep -o '"error":"[^"]*"' "$WORK/${sender%:*}.out" || true)"
        done
        python3 - "$round" "$rate" "$unloaded" "$loaded" "$(tail -1 "$WORK/broadcast.out")" "$(tail -1 "$WORK/tagged.out")" >>"$RESULTS" <<'PY'
import json, sys
round_, rate, unloaded, loaded, broadcast, tagged = sys.argv[1:]
u, l, b, t = json.loads(unloaded), json.loads(loaded), json.loads(broadcast), json.loads(tagged)
ms = lambda d, k: d.get(k, 0) / 1e3
row = {"round": int(round_), "rate": int(rate),
       "unloaded_p50": ms(u, "create_rtt_p50_us"), "unloaded_p99": ms(u, "create_rtt_p99_us"),
       "loaded_p50": ms(l, "create_rtt_p50_us"), "loaded_p99": ms(l, "create_rtt_p99_us"),
       "read_p99_alone": ms(u, "read_rtt_p99_us"), "read_p99": ms(l, "read_rtt_p99_us"),
       "list_p99_alone": ms(u, "list_rtt_p99_us"), "list_p99": ms(l, "list_rtt_p99_us"),
       "create_errors": u["create_errors"] + l["create_errors"],
       "frame_p50": ms(b, "latency_p50_us"), "frame_p99": ms(b, "latency_p99_us"),
       "tagged_p50": ms(t, "latency_p50_us"), "tagged_p99": ms(t, "latency_p99_us"),
       "deliveries_per_s": b.get("deliveries_per_s", 0) + t.get("deliveries_per_s", 0),
       "lost": b.get("lost", -1) + t.get("lost", -1)}
print(json.dumps(row))
print(f"   creates p99 {row['unloaded_p99']:.2f} -> {row['loaded_p99']:.2f} ms; reads {row['read_p99']:.2f}, lists "
      f"{row['list_p99']:.2f} ms; frames p99 {row['frame_p99']:.1f} ms, tagged {row['tagged_p99']:.1f} ms; "
      f"{row['deliveries_per_s']:.0f} deliveries/s; lost {row['lost']}", file=sys.stderr)
PY
        stop_server
    done
done

python3 - "$RESULTS" "$LAYOUT" "$SOCKETS" "$CREATE_RATE" "$MIX" "$TAGGED_SOCKETS" "$TAGS" "$TAGGED_RATE" <<'PY'
import json, statistics, sys
path, layout, sockets, create_rate, mix, tagged_sockets, tags, tagged_rate = sys.argv[1:]
rows = [json.loads(line) for line in open(path)]
print(f"Layout `{layout}`; broadcasts to {sockets} sockets, {tagged_rate} tagged sends/s to one of {tags} tags over "
      f"{tagged_sockets} more sockets; {create_rate} EDS requests/s as creates:reads:lists {mix}; "
      f"medians of {len({r['round'] for r in rows})} rounds.\n")
print("| broadcasts/s | deliveries/s | create p50 ms (alone → loaded) | create p99 ms (alone → loaded) | p99 ratio "
      "| read p99 ms | list p99 ms | broadcast frame p50 / p99 ms | tagged frame p50 / p99 ms | lost |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for rate in sorted({r["rate"] for r in rows}):
    rs = [r for r in rows if r["rate"] == rate]
    m = lambda k: statistics.median(r[k] for r in rs)
    ratio = statistics.median(r["loaded_p99"] / r["unloaded_p99"] for r in rs)
    print(f"| {rate} | {m('deliveries_per_s'):,.0f} | {m('unloaded_p50'):.2f} → {m('loaded_p50'):.2f} | "
          f"{m('unloaded_p99'):.2f} → {m('loaded_p99'):.2f} | {ratio:.1f}× | {m('read_p99_alone'):.2f} → {m('read_p99'):.2f} | "
          f"{m('list_p99_alone'):.2f} → {m('list_p99'):.2f} | {m('frame_p50'):.1f} / {m('frame_p99'):.1f} | "
          f"{m('tagged_p50'):.1f} / {m('tagged_p99'):.1f} | {sum(r['lost'] for r in rs)} |")
PY
