#!/usr/bin/env bash
# EDS files against Parse Server's files on the local disk: one SIZE_MB file uploaded (Updraft: the multipart
# form QtEnginio sends; Parse: its raw POST /parse/files/<name>) and downloaded (the signed URL; Parse's file
# URL), each timed by curl, with the server's peak RSS growth; then CONCURRENT uploads of 1 MiB at once.
# Each server on core 0, curl on core 1; medians of ROUNDS rounds, each on a fresh server.
# Usage: bench/run-files.sh > table.md
#   knobs: SIZE_MB (1024) CONCURRENT (100) ROUNDS (3) PEER=0 (Updraft alone) UPDRAFT_BIN SKIP_BUILD=1
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZE_MB=${SIZE_MB:-1024}
CONCURRENT=${CONCURRENT:-100}
ROUNDS=${ROUNDS:-3}
PEER=${PEER:-1}
PORT=18921
PARSE_PORT=18922
UPDRAFT=${UPDRAFT_BIN:-$TARGET_DIR/release/updraft}
[[ ${SKIP_BUILD:-} == 1 ]] || cargo_release -p updraft-server >&2
[[ $PEER == 1 ]] && peer_ready parse-server >&2
init_work
BIG=$WORK/big.bin
SMALL=$WORK/small.bin
head -c $((SIZE_MB << 20)) /dev/urandom >"$BIG"
head -c $((1 << 20)) /dev/urandom >"$SMALL"
RESULTS=$WORK/results.jsonl

hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# record SYSTEM UP_S DOWN_S BEFORE_KIB PEAK_KIB FAILED
record() {
    python3 - "$@" "$SIZE_MB" >>"$RESULTS" <<'PY'
import json, sys
system, up, down, before, peak, failed, size = sys.argv[1:]
mb = int(size) * 1.048576
print(json.dumps({"system": system, "up_mb_s": mb / float(up), "down_mb_s": mb / float(down),
                  "rss_growth_mib": (int(peak) - int(before)) / 1024, "failed": int(failed)}))
PY
    log "   $1: up ${2}s, down ${3}s, RSS $(((${5} - ${4}) / 1024)) MiB more, $6 of $CONCURRENT concurrent uploads failed"
}

updraft_round() {
    SERVER_DIR=$WORK/data
    serve_updraft "$UPDRAFT" 0 $PORT "$SERVER_DIR" "${BENCH_ADMIN[@]}" --max-file-bytes $(((SIZE_MB + 1) << 20)) \
        2>"$WORK/server.log"
    SERVER_PID=$!
    wait_http "$SERVER_PID" 100 "http://127.0.0.1:$PORT/healthz" || not_up updraft "$WORK/server.log"
    local base=http://127.0.0.1:$PORT
    eds_app "$base" '{"name":"images","properties":[{"name":"file","type":"ref","objectType":"files"}]}'
    local object
    object=$(curl -sf "$base/v1/objects/images" -H "Enginio-Backend-Id: $BACKEND" -d '{}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    local part="{\"targetFileProperty\":{\"objectType\":\"objects.images\",\"id\":\"$object\",\"propertyName\":\"file\"}}"
    local before
    before=$(rss_kib "$SERVER_PID")
    local out up
    out=$(taskset -c 1 curl -sf "$base/v1/files" -H "Enginio-Backend-Id: $BACKEND" -F "object=$part;type=application/json" \
        -F "file=@$BIG;type=application/octet-stream" -w '\n%{time_total}')
    up=$(tail -1 <<<"$out")
    local id url down
    id=$(head -1 <<<"$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    url=$(curl -sf "$base/v1/files/$id/download_url" -H "Enginio-Backend-Id: $BACKEND" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["expiringUrl"])')
    down=$(taskset -c 1 curl -sf -o /dev/null "$url" -w '%{time_total}')
    local peak failed
    peak=$(hwm_kib "$SERVER_PID")
    failed=$(seq "$CONCURRENT" | taskset -c 1 xargs -P "$CONCURRENT" -I{} curl -s -o /dev/null -w '%{http_code}\n' \
        "$base/v1/files" -H "Enginio-Backend-Id: $BACKEND" -F "object=$part;type=application/json" \
        -F "file=@$SMALL;type=application/octet-stream" | grep -vc '^201$' || true)
    record updraft "$up" "$down" "$before" "$peak" "$failed"
    stop_server
}

# The disk's own floor in the same run: the same bytes written and fsynced by dd on the server's core. An upload
# is acknowledged only once its bytes are fsynced, so no server uploads faster than this (download reads the
# page cache and has no such floor).
floor_round() {
    local up
    up=$( { /usr/bin/time -f '%e' taskset -c 0 dd if="$BIG" of="$WORK/floor.bin" bs=1M conv=fsync status=none; } 2>&1)
    rm -f "$WORK/floor.bin"
    python3 -c "import json; print(json.dumps({'system': 'disk', 'up_mb_s': $SIZE_MB * 1.048576 / $up}))" >>"$RESULTS"
    log "   disk (dd, fsync): ${up}s"
}

parse_round() {
    recreate_db parse_bench
    mkdir -p "$WORK/parse-files"
    SERVER_DIR=$WORK/parse-files
    serve_parse "$WORK" "$WORK/parse-logs" $PARSE_PORT FILES_DIR="$WORK/parse-files" >"$WORK/parse.log" 2>&1
    SERVER_PID=$!
    local base=http://127.0.0.1:$PARSE_PORT/parse
    wait_http "$SERVER_PID" 200 "$base/health" -H 'X-Parse-Application-Id: bench' || not_up parse "$WORK/parse.log"
    # The node process, not the subshell that started it.
    local node_pid
    node_pid=$(pgrep -P "$SERVER_PID" -f server.js || echo "$SERVER_PID")
    local before out up url down peak failed
    before=$(rss_kib "$node_pid")
    out=$(taskset -c 1 curl -sf "$base/files/big.bin" -H 'X-Parse-Application-Id: bench' \
        -H 'Content-Type: application/octet-stream' -X POST -T "$BIG" -w '\n%{time_total}')
    up=$(tail -1 <<<"$out")
    url=$(head -1 <<<"$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
    down=$(taskset -c 1 curl -sf -o /dev/null "$url" -H 'X-Parse-Application-Id: bench' -w '%{time_total}')
    peak=$(hwm_kib "$node_pid")
    failed=$(seq "$CONCURRENT" | taskset -c 1 xargs -P "$CONCURRENT" -I{} curl -s -o /dev/null -w '%{http_code}\n' \
        "$base/files/small.bin" -H 'X-Parse-Application-Id: bench' -H 'Content-Type: application/octet-stream' \
        -X POST -T "$SMALL" | grep -vc '^201$' || true)
    record parse "$up" "$down" "$before" "$peak" "$failed"
    stop_server
}

for round in $(seq "$ROUNDS"); do
    log "== round $round"
    settle 1
    floor_round
    settle 1
    updraft_round
    if [[ $PEER == 1 ]]; then
        settle 1
        parse_round
    fi
done

python3 - "$RESULTS" "$SIZE_MB" "$CONCURRENT" <<'PY'
import json, statistics, sys
path, size, concurrent = sys.argv[1:]
rows = [json.loads(line) for line in open(path)]
print(f"A {size} MiB file up and down, then {concurrent} uploads of 1 MiB at once; medians of the rounds.\n")
print("| system | upload MB/s | download MB/s | peak RSS growth MiB | failed concurrent uploads |")
print("|---|---:|---:|---:|---:|")
floor = [r["up_mb_s"] for r in rows if r["system"] == "disk"]
for system in ["updraft", "parse"]:
    mine = [r for r in rows if r["system"] == system]
    if not mine:
        continue
    m = lambda k: statistics.median(r[k] for r in mine)
    print(f"| {system} | {m('up_mb_s'):,.0f} | {m('down_mb_s'):,.0f} | {m('rss_growth_mib'):,.0f} | "
          f"{sum(r['failed'] for r in mine)} |")
if floor:
    print(f"\nThe disk's floor in the same run (dd of the same bytes with fsync, on the server's core): "
          f"{statistics.median(floor):,.0f} MB/s.")
PY
