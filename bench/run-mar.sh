#!/usr/bin/env bash
# The Managed Application Runtime (git-push app hosting, docs/runtime.md): the issue's three targets, each with its
# peer in the same run, medians of ROUNDS rounds. Updraft runs as root (the runtime's sandboxes need it) with the
# runtime on (`--apps-domain apps.bench`), one fresh server per step; the builds and apps it starts inherit its
# CPUs: both cores for the push step (PUSH_CPUS; builds may use two), core 0 for the others, whose load generator
# (wrk) runs on core 1.
#
#   push    Push → serving for examples/mar-python (Bottle and pg8000 from PyPI): from the start of `git push` to
#           the first 200 through the router (`Host: <app-id>.apps.bench`), split into the push's own wall time
#           (a push returns once the deploy is healthy) and the rest. Cold: a new app each round, so an empty
#           build cache; warm: a second push of the same app with one changed line of app.py, serving once the
#           answer shows the change. The push's transcript is stamped line by line, which splits the push into
#           its phases (receive and unpack, venv, pip install, slug, health check). Targets: cold ≤ 10 s, warm ≤ 3 s.
#   router  The tiny app (bench/mar/tiny, deployed by git push with a Procfile; BACKEND picks its server, nginx's
#           `return 200` by default, the least CPU per request of the three) answering `ok`, measured with wrk on core 1
#           at each of CONNECTIONS_LIST: directly on its PORT, through Updraft's router, and through nginx
#           (bench/mar/proxy.conf.template: one worker, pinned to Updraft's core 0, keep-alive upstream) proxying
#           to the same process. The app runs at size 8 (no CPU quota in effect) on core 0 beside the proxy.
#           Reports req/s, p50 and the proxy's CPU per request. Targets: router p50 − direct p50 ≤ 0.2 ms at one
#           connection; Updraft ≥ 2× nginx's req/s at 32 and 64.
#   rss     Updraft's own VmRSS (the `updraft` process, not the apps') on a fresh server before any app, then with
#           APPS apps created, each deployed with the tiny app (sequential pushes) and serving. Target ≤ 100 MB.
#
# Progress goes to stderr, the Markdown tables of medians to stdout; logs and per-run figures stay in RESULTS_DIR.
# Needs root, git, wrk, nginx, bubblewrap and Debian's python3-venv (installed with apt-get when missing), and
# PyPI for the push step.
# Usage: bench/run-mar.sh > table.md
#   knobs: ROUNDS (3), STEPS ("push router rss"), SECONDS_EACH (5), CONNECTIONS_LIST ("1 32 64"), APPS (20),
#          PUSH_CPUS ("0,1"), BACKEND (nginx | python | node), API_NICE (0: Updraft's HTTP threads at nginx's
#          niceness; its default on one CPU is 10), REQUEST_LOG (0: no line per request from either proxy, Updraft's
#          turned off with RUST_LOG=info,updraft::requests=off, nginx's with `access_log off`; 1: both write one,
#          Updraft as it does by default, nginx its default access log format to a file), BIN (the updraft binary),
#          RESULTS_DIR, SKIP_BUILD=1
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$ROOT/bench/mar
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-push router rss}
SECONDS_EACH=${SECONDS_EACH:-5}
CONNECTIONS_LIST=${CONNECTIONS_LIST:-1 32 64}
APPS=${APPS:-20}
PUSH_CPUS=${PUSH_CPUS:-0,1}
BACKEND=${BACKEND:-nginx}
API_NICE=${API_NICE:-0}
REQUEST_LOG=${REQUEST_LOG:-0}
BIN=${BIN:-$TARGET_DIR/release/updraft}
PORT=18951
NGINX_PORT=18952
DOMAIN=apps.bench
BASE=http://127.0.0.1:$PORT
export LUA_PATH="$HERE/?.lua;$ROOT/bench/lua/?.lua;;"

case $BACKEND in
    nginx) PROCFILE='web: exec /usr/bin/python3 bin/nginx-web' ;;
    python) PROCFILE='web: exec /usr/bin/python3 server.py' ;;
    node) PROCFILE='web: exec node server.js' ;;
    *) log "BACKEND is nginx, python or node"; exit 1 ;;
esac
[[ $(id -u) == 0 ]] || { log "the runtime's sandboxes need root"; exit 1; }
need_wrk >&2
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v bwrap >/dev/null || missing+=(bubblewrap)
/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2; fi
[[ ${SKIP_BUILD:-} == 1 ]] || cargo_release -p updraft-server >&2
[[ -x $BIN ]] || { log "no updraft binary at $BIN (set BIN)"; exit 1; }
for port in $PORT $NGINX_PORT; do
    if ss -Htln "sport = :$port" | grep -q .; then log "port $port is taken: is another run going?"; exit 1; fi
done
raise_open_files
init_results_dir mar-bench
RESULTS=$RESULTS_DIR/results.jsonl
: >"$RESULTS"
NGINX_PID=""
cleanup_more() { stop_pid "$NGINX_PID"; }
init_work
CLK_TCK=$(getconf CLK_TCK)

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# elapsed SINCE: seconds from the $EPOCHREALTIME SINCE to now.
elapsed() {
    local now=$EPOCHREALTIME
    python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$now"
}

# start_updraft CPUS: a fresh server with the runtime on CPUS; sets SERVER_PID, SERVER_DIR (both stopped and removed
# by stop_server) and TOKEN, the account token (the MAR API's and git's credential).
start_updraft() {
    SERVER_DIR=$(mktemp -d "$WORK/data.XXXXXX")
    local filter=info,updraft::requests=off
    [[ $REQUEST_LOG == 0 ]] || filter=info
    RUST_LOG=$filter serve_updraft "$BIN" "$1" $PORT "$SERVER_DIR" "${BENCH_ADMIN[@]}" --apps-domain $DOMAIN \
        --api-nice "$API_NICE" >>"$RESULTS_DIR/updraft.log" 2>&1
    SERVER_PID=$!
    wait_http "$SERVER_PID" 100 "$BASE/healthz" || not_up updraft "$RESULTS_DIR/updraft.log"
    TOKEN=$(curl -sf "$BASE/v1/account/auth/oauth2/token" \
        -d "grant_type=password&username=$BENCH_EMAIL&password=$BENCH_PASSWORD" | json_field '["access_token"]')
}

# api METHOD PATH [CURL-ARG...]: a platform or MAR API call with the account token.
api() {
    local method=$1 path=$2
    shift 2
    curl -sf -X "$method" "$BASE$path" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"
}

# create_app NAME [SIZE]: a new app (runtimeSize SIZE, 1 unless given); prints its id.
create_app() {
    api POST /v1/accounts/default/instances \
        -d "{\"name\":\"$1\",\"serviceProviderId\":\"mar\",\"config\":{\"runtimeSize\":${2:-1}}}" | json_field '["id"]'
}

# make_tree SRC DIR: DIR, a new git work tree holding SRC's files, committed.
make_tree() {
    rm -rf "$2"
    cp -r "$1" "$2"
    git -C "$2" init -q -b master
    commit "$2" app
}
commit() { git -C "$1" add -A && git -C "$1" -c user.name=bench -c user.email=bench@example.com commit -qm "$2"; }

# timed_push DIR APP OUT: `git push` of DIR's master to APP over HTTP, each line it prints stamped with the
# seconds since its start into OUT, and last `push-exit <status>`; sets PUSH_START ($EPOCHREALTIME). Fails (with
# the transcript on stderr) when the push does.
timed_push() {
    local dir=$1 app=$2 out=$3
    PUSH_START=$EPOCHREALTIME
    { local status=0
      GIT_TERMINAL_PROMPT=0 git -C "$dir" push "http://x:$TOKEN@127.0.0.1:$PORT/$app.git" master 2>&1 || status=$?
      echo "push-exit $status"; } |
        python3 -u -c '
import sys, time
start = float(sys.argv[1])
for line in sys.stdin:
    print(f"{time.time() - start:8.3f} {line}", end="", flush=True)' "$PUSH_START" >"$out"
    grep -q ' push-exit 0$' "$out" || { log "the push to $app failed:"; cat "$out" >&2; return 1; }
}

# serving APP [TEXT]: waits (20 ms apart, 120 s at most) for the first 200 through the router from APP whose
# body holds TEXT; prints the seconds since PUSH_START.
serving() {
    local app=$1 text=${2:-} body
    for _ in $(seq 6000); do
        if body=$(curl -sf -H "Host: $app.$DOMAIN" "$BASE/" 2>/dev/null) && [[ $body == *"$text"* ]]; then
            elapsed "$PUSH_START"
            return 0
        fi
        sleep 0.02
    done
    log "$app never served${text:+ \"$text\"}"
    return 1
}

# record_push KIND ROUND APP TRANSCRIPT SERVING: one JSON line of the push step, with the transcript's phases.
record_push() {
    python3 - "$@" >>"$RESULTS" <<'PY'
import json, sys
kind, round_, app, path, serving = sys.argv[1:]
stamps = []
for line in open(path):
    at, _, text = line.rstrip("\n").strip().partition(" ")
    stamps.append((float(at), text))
def first(marker):
    return next((at for at, text in stamps if marker in text), None)
marks = {"detected": first("app detected"), "venv": first("-m venv"), "pip": first("/app/.venv/bin/pip install"),
         "built": first("Discovering process types"), "deploying": first("Deploying app"),
         "up": first("process(es) up"), "deployed": first(" deployed to "), "exit": first("push-exit")}
def span(a, b):
    return round(marks[b] - marks[a], 3) if marks[a] is not None and marks[b] is not None else None
row = {"step": "push", "kind": kind, "round": int(round_), "app": app, "push_s": marks["exit"],
       "serving_s": float(serving), "after_push_s": round(float(serving) - marks["exit"], 3),
       "receive_s": marks["detected"], "venv_s": span("venv", "pip"), "pip_s": span("pip", "built"),
       "slug_s": span("built", "deploying"), "health_s": span("deploying", "up"), "tail_s": span("up", "exit")}
print(json.dumps(row))
fmt = lambda v: "–" if v is None else f"{v:.2f}"
print(f"   {kind:4} round {round_}: push {fmt(row['push_s'])} s, serving at {fmt(row['serving_s'])} s "
      f"(receive {fmt(row['receive_s'])}, venv {fmt(row['venv_s'])}, pip {fmt(row['pip_s'])}, "
      f"slug {fmt(row['slug_s'])}, health check {fmt(row['health_s'])}, end of push {fmt(row['tail_s'])} s)",
      file=sys.stderr)
PY
}

push_step() {
    log "== push → serving: examples/mar-python, $ROUNDS rounds"
    start_updraft "$PUSH_CPUS"
    local tree=$WORK/python round app serving
    make_tree "$ROOT/examples/mar-python" "$tree"
    for round in $(seq "$ROUNDS"); do
        # Cold: a new app, so a new, empty build cache.
        app=$(create_app "py$round")
        timed_push "$tree" "$app" "$RESULTS_DIR/push.cold.$round.txt"
        serving=$(serving "$app")
        record_push cold "$round" "$app" "$RESULTS_DIR/push.cold.$round.txt" "$serving"
        # Warm: one changed line, served once the answer shows it.
        sed -i "s/\"GREETING\", \"[^\"]*\"/\"GREETING\", \"Hello $round\"/" "$tree/app.py"
        commit "$tree" "round $round"
        timed_push "$tree" "$app" "$RESULTS_DIR/push.warm.$round.txt"
        serving=$(serving "$app" "Hello $round from")
        record_push warm "$round" "$app" "$RESULTS_DIR/push.warm.$round.txt" "$serving"
        api DELETE "/v1/instances/$app" -o /dev/null
    done
    stop_server
}

# app_port APP_PID: the port on which a descendant of process APP_PID (the server) listens, the app's web process.
app_port() {
    ss -Htlnp | python3 -c '
import os, re, sys
server = sys.argv[1]
def ancestors(pid):
    while pid not in ("0", "1"):
        try:
            pid = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]
        except OSError:
            return
        yield pid
for line in sys.stdin:
    port = line.split()[3].rsplit(":", 1)[1]
    for pid in re.findall(r"pid=(\d+)", line):
        if server in ancestors(pid):
            print(port)
            sys.exit(0)
sys.exit(1)' "$1"
}

# tree_ticks PID...: CPU time so far, in clock ticks, of these processes and their children.
tree_ticks() {
    local total=0 pid
    for pid in $(printf '%s\n' "$@" $(pgrep -P "$(tr ' ' , <<<"$*")" || true) | sort -u); do
        total=$((total + $(cpu_ticks "$pid" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# measure TARGET URL CONNECTIONS ROUND PROXY-PID...: one wrk run against URL; one JSON line, with the CPU per request
# of the proxy (processes PROXY-PID... and their children; none for the direct runs) and of the app's processes.
measure() {
    local target=$1 url=$2 connections=$3 round=$4 out before after backend_before backend_after
    shift 4
    sleep 1
    before=$( (($#)) && tree_ticks "$@" || echo 0)
    backend_before=$(tree_ticks "${BACKEND_PIDS[@]}")
    out=$(HOST=$APP_HOST taskset -c 1 wrk -t1 -c"$connections" -d"${SECONDS_EACH}s" --timeout 5s \
        -s "$HERE/get.lua" "$url" 2>&1) || { log "$out"; exit 1; }
    after=$( (($#)) && tree_ticks "$@" || echo 0)
    backend_after=$(tree_ticks "${BACKEND_PIDS[@]}")
    echo "$out" >"$RESULTS_DIR/router.$target.c$connections.$round.txt"
    python3 - "$target" "$connections" "$round" "$(grep '^RESULT ' <<<"$out" | cut -c8-)" \
        "$((after - before))" "$((backend_after - backend_before))" "$CLK_TCK" >>"$RESULTS" <<'PY'
import json, sys
target, connections, round_, result, ticks, backend_ticks, clk = sys.argv[1:]
r = json.loads(result)
per_request = lambda t: int(t) / int(clk) * 1e6 / max(r["requests"], 1)
r.update(step="router", target=target, connections=int(connections), round=int(round_),
         proxy_cpu_us=per_request(ticks) if target != "direct" else None, app_cpu_us=per_request(backend_ticks))
print(json.dumps(r))
cpu = f"proxy {r['proxy_cpu_us']:5.1f} µs CPU/req, " if r["proxy_cpu_us"] is not None else ""
print(f"   {target:7} c{connections:<3} round {round_}: {r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.3f}  "
      f"p99 {r['p99_ms']:6.3f} ms  {cpu}app {r['app_cpu_us']:5.1f} µs CPU/req  non-2xx {r['non2xx']} "
      f"errors {r['socket_errors'] + r['timeouts']}", file=sys.stderr)
PY
}

router_step() {
    log "== router overhead: the tiny app ($BACKEND) directly, through Updraft, through nginx; $ROUNDS rounds"
    start_updraft 0
    local tree=$WORK/tiny app backend_port round connections body dir=$WORK/nginx
    make_tree "$HERE/tiny" "$tree"
    echo "$PROCFILE" >"$tree/Procfile"
    commit "$tree" procfile
    app=$(create_app tiny 8)
    APP_HOST=$app.$DOMAIN
    timed_push "$tree" "$app" "$RESULTS_DIR/push.tiny.txt"
    PUSH_START=$EPOCHREALTIME
    serving "$app" ok >/dev/null
    backend_port=$(app_port "$SERVER_PID") || { log "the app's port was not found"; exit 1; }
    mapfile -t BACKEND_PIDS < <(ss -Htlnp "sport = :$backend_port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
    log "   the app listens on $backend_port (pids ${BACKEND_PIDS[*]}," \
        "CPUs $(taskset -cp "${BACKEND_PIDS[0]}" | awk '{print $NF}'))"
    mkdir -p "$dir"
    local access_log=off
    [[ $REQUEST_LOG == 0 ]] || access_log=$dir/access.log
    sed -e "s|@ACCESS_LOG@|$access_log|" -e "s|@DIR@|$dir|g" -e "s|@PORT@|$NGINX_PORT|" \
        -e "s|@BACKEND_PORT@|$backend_port|" \
        "$HERE/proxy.conf.template" >"$dir/nginx.conf"
    taskset -c 0 nginx -e stderr -p "$dir" -c "$dir/nginx.conf" >>"$RESULTS_DIR/nginx.log" 2>&1 &
    NGINX_PID=$!
    wait_http "$NGINX_PID" 50 "http://127.0.0.1:$NGINX_PORT/" || not_up nginx "$RESULTS_DIR/nginx.log"
    for url in "http://127.0.0.1:$backend_port/" "$BASE/" "http://127.0.0.1:$NGINX_PORT/"; do
        body=$(curl -sf -H "Host: $APP_HOST" "$url") && [[ $body == ok ]] || { log "$url answered \"$body\""; exit 1; }
    done
    for round in $(seq "$ROUNDS"); do
        for connections in $CONNECTIONS_LIST; do
            measure direct "http://127.0.0.1:$backend_port/" "$connections" "$round"
            measure updraft "$BASE/" "$connections" "$round" "$SERVER_PID"
            measure nginx "http://127.0.0.1:$NGINX_PORT/" "$connections" "$round" "$NGINX_PID"
        done
    done
    stop_pid "$NGINX_PID"
    NGINX_PID=""
    stop_server
}

rss_kib() { awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/status"; }

rss_step() {
    log "== Updraft's RSS with $APPS idle apps (the tiny app, $BACKEND); $ROUNDS rounds"
    local tree=$WORK/idle round before after peak i app started pushes ids
    make_tree "$HERE/tiny" "$tree"
    echo "$PROCFILE" >"$tree/Procfile"
    commit "$tree" procfile
    for round in $(seq "$ROUNDS"); do
        start_updraft 0
        sleep 1
        before=$(rss_kib "$SERVER_PID" VmRSS)
        pushes=() ids=()
        for i in $(seq "$APPS"); do
            app=$(create_app "idle$i")
            ids+=("$app")
            started=$EPOCHREALTIME
            timed_push "$tree" "$app" "$RESULTS_DIR/push.idle.$round.$i.txt"
            pushes+=("$(elapsed "$started")")
        done
        for app in "${ids[@]}"; do
            PUSH_START=$EPOCHREALTIME
            serving "$app" ok >/dev/null
        done
        sleep 2
        after=$(rss_kib "$SERVER_PID" VmRSS)
        peak=$(rss_kib "$SERVER_PID" VmHWM)
        python3 - "$round" "$before" "$after" "$peak" "$APPS" "${pushes[@]}" >>"$RESULTS" <<'PY'
import json, statistics, sys
round_, before, after, peak, apps, *pushes = sys.argv[1:]
pushes = [float(p) for p in pushes]
row = {"step": "rss", "round": int(round_), "apps": int(apps), "before_mb": int(before) / 1024,
       "after_mb": int(after) / 1024, "peak_mb": int(peak) / 1024, "push_median_s": statistics.median(pushes),
       "push_max_s": max(pushes)}
print(json.dumps(row))
print(f"   round {round_}: VmRSS {row['before_mb']:.1f} MB before, {row['after_mb']:.1f} MB with {apps} apps "
      f"serving (VmHWM {row['peak_mb']:.1f} MB); pushes median {row['push_median_s']:.2f} s, "
      f"max {row['push_max_s']:.2f} s", file=sys.stderr)
PY
        stop_server
    done
}

START_DATE=$(date -u +%Y-%m-%d)
for step in $STEPS; do
    case $step in
        push) push_step ;;
        router) router_step ;;
        rss) rss_step ;;
        *) log "STEPS holds push, router and rss"; exit 1 ;;
    esac
done

{
    echo "date: $START_DATE"
    dirty=$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.lock 2>/dev/null || echo ' with uncommitted changes')
    echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$dirty"
    echo "cpus: $(nproc) × $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel: $(uname -r)"
    versions="$(nginx -v 2>&1 | sed 's/^nginx version: //'), wrk $( (wrk -v 2>&1 || true) | awk 'NR==1 {print $2}')"
    versions+=", /usr/bin/python3 $(/usr/bin/python3 -c 'import platform; print(platform.python_version())')"
    versions+=", git $(git --version | awk '{print $3}')"
    [[ $BACKEND != node ]] || versions+=", node $(node --version)"
    echo "versions: $versions"
} >"$RESULTS_DIR/conditions.txt"

echo
python3 - "$RESULTS" "$RESULTS_DIR/conditions.txt" "$ROUNDS" "$SECONDS_EACH" "$BACKEND" "$APPS" "$API_NICE" \
    "$REQUEST_LOG" "$PUSH_CPUS" <<'PY'
import json, statistics, sys
path, conditions, rounds, seconds, backend, apps, api_nice, request_log, push_cpus = sys.argv[1:]
rows = [json.loads(line) for line in open(path)]
cond = dict(line.rstrip("\n").split(": ", 1) for line in open(conditions))

def med(rs, key):
    values = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(values) if values else None

def fmt(v, spec=".2f"):
    return "–" if v is None else format(v, spec)

def each(rs, key, spec):
    return " / ".join(fmt(r.get(key), spec) for r in sorted(rs, key=lambda r: r["round"]))

print(f"**Conditions:** {cond['date']}, commit `{cond['commit']}`; {cond['cpus']}, Linux {cond['kernel']}; "
      f"{cond['versions']}. Updraft: release build, as root, `--apps-domain apps.bench --api-nice {api_nice}`, a "
      f"fresh server per step; medians of {rounds} rounds.\n")

push = [r for r in rows if r["step"] == "push"]
if push:
    print("### Push → serving (examples/mar-python: Bottle + pg8000 from PyPI)\n")
    print(f"Updraft, its builds and the app on CPUs {push_cpus}; git unpinned. Cold: a new app (empty build cache) "
          "each round; warm: the next push to it, one line of app.py changed, served once the answer shows it. "
          "Serving: from the start of `git push` to the first such 200 through the router. The push's phases come "
          "from its transcript, stamped as each line reached the pusher (venv: `python3 -m venv`; pip install: up "
          "to `Discovering process types`; health check: from `Deploying app` to `process(es) up`).\n")
    print("| push | serving s (rounds) | median | target | `git push` wall s | after the push s | receive s | venv s "
          "| pip install s | slug s | health check s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, target in (("cold", 10), ("warm", 3)):
        rs = [r for r in push if r["kind"] == kind]
        if not rs:
            continue
        m = med(rs, "serving_s")
        verdict = "✓" if m <= target else "✗"
        print(f"| {kind} | {each(rs, 'serving_s', '.2f')} | {m:.2f} | ≤ {target} {verdict} | {fmt(med(rs, 'push_s'))} | "
              f"{fmt(med(rs, 'after_push_s'))} | {fmt(med(rs, 'receive_s'))} | {fmt(med(rs, 'venv_s'))} | "
              f"{fmt(med(rs, 'pip_s'))} | {fmt(med(rs, 'slug_s'))} | {fmt(med(rs, 'health_s'))} |")
    print()

router = [r for r in rows if r["step"] == "router"]
if router:
    print(f"### Router overhead (the tiny app, `{backend}` answering `ok`; {seconds} s per run)\n")
    print("Updraft on core 0, wrk (1 thread) on core 1. The app (size 8: no CPU quota in effect) runs on core 0 "
          "beside the proxy measured, as the runtime starts it; nginx gets one worker pinned to core 0, as Updraft "
          "is (whose runtimes then have one worker thread each), with keep-alive upstream connections and no "
          "keep-alive request limit. " + ("Both proxies write a line per request (Updraft to its stderr, as by "
          "default; nginx its access log to a file). " if request_log != "0" else "Neither proxy writes a line per "
          "request (Updraft: `RUST_LOG=info,updraft::requests=off`; nginx: `access_log off`). ") + "Direct: wrk on "
          "the app's own port. CPU µs/req: the proxy process's CPU time over the run, per request.\n")
    print("| connections | direct req/s | direct p50 ms | Updraft req/s | Updraft p50 ms | Updraft CPU µs/req "
          "| nginx req/s | nginx p50 ms | nginx CPU µs/req | Updraft/nginx req/s | p50 over direct: Updraft / nginx ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in sorted({r["connections"] for r in router}):
        by = {t: [r for r in router if r["connections"] == c and r["target"] == t] for t in ("direct", "updraft", "nginx")}
        rps = {t: med(rs, "rps") for t, rs in by.items()}
        p50 = {t: med(rs, "p50_ms") for t, rs in by.items()}
        ratio = rps["updraft"] / rps["nginx"] if rps["updraft"] and rps["nginx"] else None
        over = lambda t: None if p50[t] is None or p50["direct"] is None else p50[t] - p50["direct"]
        print(f"| {c} | {fmt(rps['direct'], ',.0f')} | {fmt(p50['direct'], '.3f')} | {fmt(rps['updraft'], ',.0f')} | "
              f"{fmt(p50['updraft'], '.3f')} | {fmt(med(by['updraft'], 'proxy_cpu_us'), '.1f')} | "
              f"{fmt(rps['nginx'], ',.0f')} | {fmt(p50['nginx'], '.3f')} | {fmt(med(by['nginx'], 'proxy_cpu_us'), '.1f')} | "
              f"{fmt(ratio, '.2f')}× | {fmt(over('updraft'), '+.3f')} / {fmt(over('nginx'), '+.3f')} |")
    bad = sum(r["non2xx"] + r["timeouts"] + r["socket_errors"] for r in router)
    low = min(r["connections"] for r in router)
    overhead = [med([r for r in router if r["connections"] == low and r["target"] == "updraft"], "p50_ms"),
                med([r for r in router if r["connections"] == low and r["target"] == "direct"], "p50_ms")]
    print(f"\nTargets: router p50 − direct p50 at {low} connection(s) ≤ 0.2 ms: "
          f"{'✓' if overhead[0] - overhead[1] <= 0.2 else '✗'} ({overhead[0] - overhead[1]:+.3f} ms); "
          "Updraft ≥ 2× nginx's req/s: " + ", ".join(
              f"{c} connections {'✓' if x >= 2 else '✗'} ({x:.2f}×)"
              for c in sorted({r['connections'] for r in router}) if c > 1
              for x in [med([r for r in router if r['connections'] == c and r['target'] == 'updraft'], 'rps') /
                        med([r for r in router if r['connections'] == c and r['target'] == 'nginx'], 'rps')])
          + f". Non-2xx answers, timeouts and socket errors: {bad}.\n")

rss = [r for r in rows if r["step"] == "rss"]
if rss:
    print(f"### Control-plane memory with {apps} idle apps (the tiny app, `{backend}`)\n")
    print("Updraft and its apps on core 0. VmRSS of the `updraft` process alone (the apps' processes not counted), "
          "on a fresh server each round: "
          f"before any app, then with {apps} apps created, deployed one push after the other and all serving.\n")
    print("| metric | rounds | median | target |")
    print("|---|---|---:|---:|")
    m = med(rss, "after_mb")
    print(f"| VmRSS before any app, MB | {each(rss, 'before_mb', '.1f')} | {med(rss, 'before_mb'):.1f} | |")
    print(f"| VmRSS with {apps} apps serving, MB | {each(rss, 'after_mb', '.1f')} | {m:.1f} | ≤ 100 {'✓' if m <= 100 else '✗'} |")
    print(f"| VmHWM (peak) over the round, MB | {each(rss, 'peak_mb', '.1f')} | {med(rss, 'peak_mb'):.1f} | |")
    print(f"| push of the tiny app (no build), median s | {each(rss, 'push_median_s', '.2f')} | {med(rss, 'push_median_s'):.2f} | |")
    print()
PY
