# shellcheck shell=bash
# Shared by the conformance runners and interop/run.sh (sourced, not run).

# Runs `npm ci` in directory $1 when the packages installed there differ from its lock file; $2 names the suite in
# messages. Exits 2 when npm fails.
npm_ready() {
  local dir=$1 name=$2
  if node -e '
    const fs = require("fs");
    const dir = process.argv[1];
    const lock = JSON.parse(fs.readFileSync(dir + "/package-lock.json", "utf8"));
    for (const [p, meta] of Object.entries(lock.packages)) {
      if (!p) continue;
      const installed = JSON.parse(fs.readFileSync(dir + "/" + p + "/package.json", "utf8"));
      if (installed.version !== meta.version) process.exit(1);
    }' "$dir" 2>/dev/null; then
    return 0
  fi
  echo "== npm ci --prefix $dir"
  npm ci --prefix "$dir" --no-audit --no-fund || { echo "$name: npm ci failed" >&2; exit 2; }
}

# The updraft binary: UPDRAFT_BIN (default target/debug/updraft), relative to the current directory or to the
# repository root $2. Sets `bin`; exits 2 when there is none. $1 names the suite in messages.
find_updraft() {
  local name=$1 root=$2
  bin="${UPDRAFT_BIN:-target/debug/updraft}"
  case "$bin" in
    /*) ;;
    *) if [[ -e "$PWD/$bin" ]]; then bin="$PWD/$bin"; else bin="$root/$bin"; fi ;;
  esac
  if [[ ! -x "$bin" ]]; then
    echo "$name: updraft binary not found at $bin (build it with 'cargo build -p updraft-server' or set UPDRAFT_BIN)" >&2
    exit 2
  fi
}

# A scratch directory `work`, removed at exit together with the server whose pid is in `server_pid` (only that
# one). $1 names the suite in messages and in the directory's name.
init_work() {
  suite_name=$1
  work="$(mktemp -d "${TMPDIR:-/tmp}/updraft-$1.XXXXXX")"
  server_pid=""
  trap cleanup_work EXIT
  trap 'exit 130' INT TERM
}

cleanup_work() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
}

# A failure before the tests: said with the server log's tail, counted as one failed test, exit 1.
fail_setup() {
  echo "$suite_name: $*" >&2
  if [[ -s "$work/server.log" ]]; then echo "--- server log (tail)" >&2; tail -n 20 "$work/server.log" >&2; fi
  summary 0 1 0
  exit 1
}

# The suite's one-line result: `<suite>: N passed, M failed`, and `, K skipped` when `count_skipped` is 1.
summary() {
  local tail=""
  [[ "${count_skipped:-0}" == 1 ]] && tail=", $3 skipped"
  echo "$suite_name: $1 passed, $2 failed$tail"
}

token() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# Waits (10 s) for the server started as `server_pid`, logging JSON to $work/server.log, to log the address it
# listens on (it was given port 0); sets `addr`. $1 is added to the message should the server exit first.
wait_for_address() {
  addr=""
  for _ in $(seq 100); do
    addr="$(grep -m1 -o '"local_addr":"[^"]*"' "$work/server.log" 2>/dev/null | cut -d'"' -f4)"
    [[ -n "$addr" ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || fail_setup "updraft exited at startup$1"
    sleep 0.1
  done
  fail_setup "updraft did not log its address within 10 s"
}

# Whether every URL answers 2xx within 10 s (fetched by node, so NODE_EXTRA_CA_CERTS applies).
urls_answer() {
  node -e '
    (async () => {
      for (let i = 0; i < 100; i++) {
        try {
          const ok = await Promise.all(process.argv.slice(1).map((u) => fetch(u).then((r) => r.ok)));
          if (ok.every(Boolean)) return;
        } catch {}
        await new Promise((r) => setTimeout(r, 100));
      }
      process.exit(1);
    })();' "$@"
}

# node_test_flags MS: sets `node_flags` to `--test` and, where this Node has the flag (20.11+), the whole-test time
# limit MS.
node_test_flags() {
  node_flags=(--test)
  if node --test-timeout=1 -e 0 >/dev/null 2>&1; then node_flags+=(--test-timeout="$1"); fi
}

# Runs `node --test` with the arguments after $1 (the whole-test time limit in ms, where this Node has the flag),
# prints the summary from its TAP totals, and exits: 1 on any failure or when nothing passed.
run_node_tests() {
  local timeout_ms=$1
  shift
  local node_flags
  node_test_flags "$timeout_ms"
  node "${node_flags[@]}" --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$work/results.tap" "$@"
  local status=$?
  count() { grep -E "^# $1 [0-9]+$" "$work/results.tap" 2>/dev/null | tail -n1 | awk '{ print $3 }'; }
  local passed failed cancelled skipped
  passed="$(count pass)" failed="$(count fail)" cancelled="$(count cancelled)" skipped="$(count skipped)"
  passed="${passed:-0}"
  failed=$((${failed:-0} + ${cancelled:-0}))
  if ((status != 0 && failed == 0)); then failed=1; fi # node failed outside any test (e.g. a file did not load)
  if ((failed)); then
    echo "--- server log (tail)"
    tail -n 20 "$work/server.log"
  fi
  summary "$passed" "$failed" "${skipped:-0}"
  if ((failed || passed == 0)); then exit 1; fi
  exit 0
}
