# bench/lib.sh: what the bench scripts share. Sourced, not run; sourcing it only sets the variables below and
# defines the functions (no build, no trap, no server until a script calls for them).
#
# Expects: bash, sourced at the top of a script under `set -euo pipefail`. Some functions read the script's knobs:
# CONNECTIONS and SECONDS_EACH (run_wrk), LAYOUT (layout_setup), UPDRAFT, PORT, SERVER_CPUS and WORK
# (start_fresh_server), RESULTS_DIR (node_table), SKIP_BUILD (build_release_bins skips on any value, layout_setup
# on 1, as the scripts calling cargo_release do); interleave calls the script's `run_one`, and bench_exit its
# `cleanup_more`, if defined.
#
# Provides:
#   ROOT TARGET_DIR LOADGEN      the repository, the cargo target dir (CARGO_TARGET_DIR or $ROOT/target) and the
#                                release updraft-loadgen in it; each script picks its own `updraft` binary
#   PARSE_PEER                   bench/peers/parse-server
#   ADMIN_TOKEN BENCH_EMAIL BENCH_PASSWORD BENCH_ADMIN BENCH_SCHEMA
#                                what every bench server is given: the security token, the admin account (and the
#                                `serve` arguments making it), the `bench` object type of the EDS steps
#   log                          a line to stderr
#   build_release_bins cargo_release                   the builds
#   raise_open_files init_results_dir init_work bench_traps
#                                setup: open-file limit, results dir, scratch dir WORK, the exit and signal traps
#   SERVER_PID SERVER_DIR serve_updraft serve_parse port_open wait_http not_up stop_pid stop_server
#                                one server at a time: started pinned, waited for, stopped (TERM, then KILL after
#                                5 s) with its fresh dir removed, and stopped at exit whatever happens
#   settle pg drop_db recreate_db peer_ready cpu_ticks  the disk, PostgreSQL, the peers' npm packages, CPU time
#   need_wrk run_wrk eds_app parse_bench_class         the wrk-driven EDS steps (run-eds*.sh, ab-eds.sh)
#   loadgen_run loadgen_figures interleave node_table  the updraft-loadgen rounds and median tables of run-mws.sh
#                                                      and run-realtime.sh
#   layout_setup start_fresh_server                    the laid-out single server of run-mixed.sh, run-reverse.sh
#   NODES DIRS start_node stop_nodes                   several servers at once: the nodes of run-cluster*.sh
#
# shellcheck shell=bash
# Its variables and optional arguments are for the scripts that source it:
# shellcheck disable=SC2034,SC2120,SC2153

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
LOADGEN=$TARGET_DIR/release/updraft-loadgen
PARSE_PEER=$ROOT/bench/peers/parse-server
ADMIN_TOKEN=bench-admin
BENCH_EMAIL=bench@example.com
BENCH_PASSWORD=bench-password
BENCH_ADMIN=(--admin-email "$BENCH_EMAIL" --admin-password "$BENCH_PASSWORD")
# `n` is declared indexed, as an application sorting on it would; the Parse peer gets the same index
# (parse_bench_class).
BENCH_SCHEMA='{"name":"bench","properties":[{"name":"title","type":"string"},{"name":"done","type":"boolean"},{"name":"n","type":"number","indexed":true}]}'

log() { echo "$@" >&2; }

# --- builds --------------------------------------------------------------------------------------------------
# Unless SKIP_BUILD is set (to anything): the release build of updraft-server and updraft-loadgen, or of the load
# generator alone should the workspace fail to build. Exits when there is no load generator.
build_release_bins() {
    if [[ -z ${SKIP_BUILD:-} ]]; then
        (cd "$ROOT" && cargo build --release -p updraft-server -p updraft-loadgen) ||
            { echo "warning: workspace build failed; building the load generator alone" >&2
              (cd "$ROOT" && cargo build --release -p updraft-loadgen); }
    fi
    [[ -x $LOADGEN ]] || { echo "error: $LOADGEN missing" >&2; exit 1; }
}

# cargo_release ARG...: a quiet release build of this workspace (the callers skip it when SKIP_BUILD=1). From the
# workspace's directory, as cargo reads .cargo/config.toml (how mimalloc is built) from where it runs, not from
# --manifest-path.
cargo_release() { (cd "$ROOT" && cargo build --release -q "$@"); }

# --- setup -----------------------------------------------------------------------------------------------------
# raise_open_files [SOCKETS]: the full open-file allowance; warns when it is too low for SOCKETS sockets.
raise_open_files() {
    ulimit -n "$(ulimit -Hn)"
    if [[ -n ${1:-} ]] && (( $(ulimit -n) < $1 + 500 )); then
        echo "warning: open-file limit $(ulimit -n) is too low for $1 sockets" >&2
    fi
}

# init_results_dir PREFIX: RESULTS_DIR (a new temp dir named PREFIX.XXXXXX unless given), made and said on stderr.
init_results_dir() {
    RESULTS_DIR=${RESULTS_DIR:-$(mktemp -d -t "$1.XXXXXX")}
    mkdir -p "$RESULTS_DIR"
    echo "results and logs: $RESULTS_DIR" >&2
}

SERVER_PID="" # the server running now, stopped by stop_server and at exit
SERVER_DIR="" # its fresh dir, if any, removed with it
WORK=""       # the scratch dir of init_work, removed at exit

# bench_traps: at exit, stop_server, then the caller's `cleanup_more` if it defines one, then remove WORK; INT and
# TERM exit (130) through it.
bench_traps() {
    trap bench_exit EXIT
    trap 'exit 130' INT TERM
}
bench_exit() {
    stop_server
    if declare -F cleanup_more >/dev/null; then cleanup_more || true; fi
    if [[ -n $WORK ]]; then rm -rf "$WORK"; fi
    return 0
}

# init_work: WORK, a new scratch dir, and bench_traps.
init_work() {
    WORK=$(mktemp -d)
    bench_traps
}

# --- servers ---------------------------------------------------------------------------------------------------
# serve_updraft BIN CPUS PORT DIR [ARG...]: `BIN serve` on 127.0.0.1:PORT with the data dir DIR (and ARG...),
# pinned to CPUS, in the background: $! is its pid. The caller gives its environment and redirects its output.
serve_updraft() {
    local bin=$1 cpus=$2 port=$3 dir=$4
    shift 4
    taskset -c "$cpus" "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir" "$@" &
}

# serve_parse DIR LOGS PORT [NAME=VALUE...]: the Parse Server peer (bench/peers/parse-server) on CPU 0 at PORT,
# with that environment, in the background ($! is its pid). It starts from DIR with its logs folder LOGS: Parse
# writes logs where it starts. The caller redirects its output.
serve_parse() {
    local dir=$1 logs=$2 port=$3
    shift 3
    (cd "$dir" && exec env "$@" PARSE_SERVER_LOGS_FOLDER="$logs" PORT="$port" taskset -c 0 node "$PARSE_PEER/server.js") &
}

# port_open PORT: whether something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_http PID TRIES URL [CURL-ARG...]: waits until URL answers 2xx, trying TRIES times 0.1 s apart. Fails after
# the last try, or at once when process PID (if not empty) has exited.
wait_http() {
    local pid=$1 tries=$2 url=$3
    shift 3
    for _ in $(seq "$tries"); do
        [[ -z $pid ]] || kill -0 "$pid" 2>/dev/null || return 1
        curl -sf -o /dev/null "$@" "$url" && return 0
        sleep 0.1
    done
    return 1
}

# not_up NAME LOG: says that NAME did not come up, with LOG's tail; fails.
not_up() {
    echo "error: $1 did not come up; see $2" >&2
    tail -5 "$2" >&2
    return 1
}

# stop_pid PID: stops that process (TERM, then KILL after 5 s) and reaps it; nothing when PID is empty.
stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# stop_server: stops SERVER_PID and removes SERVER_DIR, if any.
stop_server() {
    stop_pid "$SERVER_PID"
    SERVER_PID=""
    if [[ -n $SERVER_DIR ]]; then rm -rf "$SERVER_DIR"; SERVER_DIR=""; fi
}

# --- the machine, PostgreSQL, the peers --------------------------------------------------------------------------
# settle [SECONDS]: lets earlier disk work (PostgreSQL's checkpoints, a previous step's files) finish first, as
# inserts wait on fsync and a busy disk otherwise shows up in whichever server runs next; then sleeps SECONDS (3).
settle() {
    sync
    pg -c CHECKPOINT postgres >/dev/null 2>&1 || true
    sync
    sleep "${1:-3}"
}

# pg ARG...: psql as postgres on the local PostgreSQL, quiet.
pg() { psql -q -h 127.0.0.1 -U postgres "$@"; }
drop_db() { pg -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" postgres; }
recreate_db() { pg -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" postgres; }

# peer_ready NAME [PACKAGE]: `npm ci` in bench/peers/NAME unless its node_modules (or node_modules/PACKAGE) is there.
peer_ready() {
    local dir=$ROOT/bench/peers/$1
    [[ -d $dir/node_modules${2:+/$2} ]] || npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
}

# cpu_ticks PID: CPU time (user and system) of a process so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# --- wrk-driven EDS steps --------------------------------------------------------------------------------------------
need_wrk() { command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }; }

# run_wrk SCRIPT URL [ARG...]: wrk on CPU 1, one thread, CONNECTIONS connections for SECONDS_EACH seconds, running
# the Lua SCRIPT against URL.
run_wrk() {
    local script=$1 url=$2
    shift 2
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_EACH}s" "$@" -s "$script" "$url"
}

# eds_app BASE SCHEMA: on the Updraft at BASE, signs in as the bench admin, makes an app and declares the object
# type SCHEMA (JSON) in its environment; sets TOKEN, BACKEND and MASTER_KEY.
eds_app() {
    local base=$1 schema=$2
    TOKEN=$(curl -sf "$base/v1/account/auth/oauth2/token" \
        -d "grant_type=password&username=$BENCH_EMAIL&password=$BENCH_PASSWORD" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    read -r BACKEND MASTER_KEY < <(curl -sf "$base/v1/account/apps" -H "Authorization: Bearer $TOKEN" \
        -d '{"name":"bench"}' |
        python3 -c 'import json,sys; e=json.load(sys.stdin)["environments"][0]; print(e["id"], e["masterKeys"][0]["key"])')
    curl -sf -o /dev/null "$base/v1/object_types" -H "Authorization: Bearer $TOKEN" \
        -H "Enginio-Backend-Id: $BACKEND" -H "Enginio-Backend-MasterKey: $MASTER_KEY" -d "$schema"
}

# parse_bench_class BASE: BENCH_SCHEMA's class on the Parse Server at BASE: the same fields and index on `n`.
parse_bench_class() {
    curl -sf -o /dev/null "$1/parse/schemas/Bench" -H 'X-Parse-Application-Id: bench' \
        -H 'X-Parse-Master-Key: bench-master' -H 'Content-Type: application/json' \
        -d '{"className":"Bench","fields":{"title":{"type":"String"},"done":{"type":"Boolean"},"n":{"type":"Number"}},"indexes":{"n_1":{"n":1}}}'
}

# --- updraft-loadgen rounds ----------------------------------------------------------------------------------------
# loadgen_run OUT ARG...: `updraft-loadgen ARG...` on CPU 1 into OUT.txt. It stops itself at its --max-seconds;
# `timeout`, 20 s later, is a backstop. A failed run is said, and its partial figures kept.
loadgen_run() {
    local out=$1 max=0 prev="" arg
    shift
    for arg in "$@"; do
        [[ $prev != --max-seconds ]] || max=$arg
        prev=$arg
    done
    timeout --kill-after=5 $((max + 20)) taskset -c 1 "$LOADGEN" "$@" >"$out.txt" 2>&1 ||
        echo "   (exit $?: incomplete run, partial figures kept)" >&2
}

# loadgen_figures OUT: the last JSON line of OUT.txt into OUT.json; the rest of OUT.txt, indented, to stderr.
loadgen_figures() {
    grep '^{' "$1.txt" | tail -1 >"$1.json" || true
    sed -e '/^{/d' -e 's/^/   /' "$1.txt" >&2
}

# interleave ROUNDS STEPS PEERS: `run_one PEER STEP ROUND` for each round, step and peer. The peers are innermost, so
# that a noisy moment of the machine hits them all alike.
interleave() {
    local round step peer
    for round in $(seq "$1"); do
        for step in $2; do
            for peer in $3; do
                run_one "$peer" "$step" "$round"
            done
        done
    done
}

# node_table: runs the Node script on stdin with `dir` (RESULTS_DIR), `runs(peer, step)` (the figures of every
# round of one peer and step or scenario: RESULTS_DIR/<peer>.<step>.<round>.json, in name order) and
# `median(values)` (of the numbers among them; undefined if none) defined.
node_table() {
    {
        cat <<'EOF'
const fs = require('node:fs');
const path = require('node:path');
const dir = process.env.RESULTS_DIR;
const runs = (peer, step) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${peer}.${step}.`) && f.endsWith('.json'))
    .sort()
    .flatMap((f) => {
      try {
        return [JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'))];
      } catch {
        return [];
      }
    });
const median = (values) => {
  const v = values.filter((x) => typeof x === 'number').sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
EOF
        cat
    } | RESULTS_DIR=$RESULTS_DIR node -
}

# --- one server at a time, laid out by LAYOUT (run-mixed.sh, run-reverse.sh) ------------------------------------------
# layout_setup: the build (unless SKIP_BUILD=1), the open-file limit, SERVER_CPUS and CLIENT_CPUS from LAYOUT
# (`one-core`: the server on CPU 0, the clients on CPU 1; `two-cores`: both on both), and init_work.
layout_setup() {
    [[ ${SKIP_BUILD:-} == 1 ]] || cargo_release -p updraft-server -p updraft-loadgen >&2
    raise_open_files
    case $LAYOUT in
        one-core) SERVER_CPUS=0 CLIENT_CPUS=1 ;;
        two-cores) SERVER_CPUS=0,1 CLIENT_CPUS=0,1 ;;
        *) log "LAYOUT is one-core or two-cores"; exit 1 ;;
    esac
    init_work
}

# start_fresh_server [ARG...]: UPDRAFT on a fresh $WORK/data at PORT on SERVER_CPUS (access control off, ADMIN_TOKEN,
# the bench admin), `serve` given ARG...; waits for /healthz, then runs the AFTER_START hook, if any, with its pid
# (an experiment's, e.g. to move its threads between cgroups). Exits if it does not start.
start_fresh_server() {
    rm -rf "$WORK/data"
    sync
    ACCESS_CONTROL=none SECURITY_TOKEN=$ADMIN_TOKEN serve_updraft "$UPDRAFT" "$SERVER_CPUS" "$PORT" "$WORK/data" \
        "${BENCH_ADMIN[@]}" "$@" 2>"$WORK/server.log"
    SERVER_PID=$!
    if ! wait_http "" 100 "http://127.0.0.1:$PORT/healthz"; then
        log "the server did not start"; cat "$WORK/server.log" >&2; exit 1
    fi
    [[ -z ${AFTER_START:-} ]] || $AFTER_START "$SERVER_PID"
}

# --- nodes of a cluster ------------------------------------------------------------------------------------------
# start_node BIN PORT LOG [ARG...]: `BIN serve` (and ARG...) on CPU 0 at 127.0.0.1:PORT with a fresh data dir, the
# admin token as gateway and metrics token and no access control, output to LOG; waits for its /readyz. Its pid
# and dir join NODES and DIRS. stop_nodes: stops every node and removes their dirs.
NODES=()
DIRS=()
start_node() {
    local bin=$1 port=$2 log=$3 dir
    shift 3
    dir=$(mktemp -d -t updraft-node.XXXXXX)
    DIRS+=("$dir")
    ACCESS_CONTROL=none SECURITY_TOKEN=$ADMIN_TOKEN UPDRAFT_METRICS_TOKEN=$ADMIN_TOKEN \
        serve_updraft "$bin" 0 "$port" "$dir" "$@" >"$log" 2>&1
    NODES+=($!)
    wait_http "$!" 300 "http://127.0.0.1:$port/readyz" || not_up "node $port" "$log"
}

stop_nodes() {
    local pid dir
    for pid in "${NODES[@]}"; do stop_pid "$pid"; done
    for dir in "${DIRS[@]}"; do rm -rf "$dir"; done
    NODES=()
    DIRS=()
}
