# Sourced by run-mixed.sh and run-reverse.sh: build, layout, and one Updraft server at a time on a fresh data dir.
# Expects ROOT, LAYOUT, PORT and ADMIN_TOKEN; `start_server [args...]` passes its arguments to `serve`.
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOADGEN=$TARGET_DIR/release/updraft-loadgen
UPDRAFT=${UPDRAFT_BIN:-$TARGET_DIR/release/updraft}
log() { echo "$@" >&2; }

[[ ${SKIP_BUILD:-} == 1 ]] || cargo build --release -q -p updraft-server -p updraft-loadgen --manifest-path "$ROOT/Cargo.toml" >&2
ulimit -n "$(ulimit -Hn)"
case $LAYOUT in
    one-core) SERVER_CPUS=0 CLIENT_CPUS=1 ;;
    two-cores) SERVER_CPUS=0,1 CLIENT_CPUS=0,1 ;;
    *) log "LAYOUT is one-core or two-cores"; exit 1 ;;
esac

WORK=$(mktemp -d)
SERVER_PID=
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
cleanup() { stop_server; rm -rf "$WORK"; }
trap cleanup EXIT

start_server() {
    rm -rf "$WORK/data"
    sync
    ACCESS_CONTROL=none SECURITY_TOKEN=$ADMIN_TOKEN taskset -c $SERVER_CPUS "$UPDRAFT" serve --listen 127.0.0.1:$PORT \
        --data-dir "$WORK/data" --admin-email bench@example.com --admin-password bench-password "$@" \
        2>"$WORK/server.log" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null || { sleep 0.1; continue; }
        # An experiment's hook, given the server's pid (e.g. to move its threads between cgroups).
        [[ -z ${AFTER_START:-} ]] || $AFTER_START "$SERVER_PID"
        return 0
    done
    log "the server did not start"; cat "$WORK/server.log" >&2; exit 1
}
