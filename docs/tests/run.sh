#!/usr/bin/env bash
# Runs the guide's snippets against a real `updraft serve`, as a reader would: every code block whose info string
# ends in `,test` (```sh,test, ```ruby,test, ```cpp,test) in docs/*.md and docs/clients/*.md, page by page.
#   - `sh`: one bash script per page (set -euo pipefail), in a fresh directory, with the variables the quickstart
#     exports (UPDRAFT, EMAIL, PASSWORD) and those the client pages start from (BACKEND, SECRET: a development
#     backend of an app made for the page);
#   - `ruby`: one program per page, run with Debian's ruby and the same variables;
#   - `cpp`: one Qt 5 program per page (QtNetwork, QtWebSockets), built with qmake; it must print `connected` once
#     its socket is open, then the runner sends a message to every socket and the program must print it and exit 0.
# The npm SDK's snippets (docs/clients/npm.md, ```js,test) run in the conformance suite (conformance/node/
# guide.test.mjs), which serves the HTTPS that SDK needs. Then it builds the book with mdBook (MDBOOK, default
# target/tools/bin/mdbook), which fails on a page missing from SUMMARY.md.
#
#   cargo build -p updraft-server && UPDRAFT_BIN=$PWD/target/debug/updraft bash docs/tests/run.sh
# Prints `guide: N passed, M failed`.
set -uo pipefail
shopt -s nullglob

root="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=conformance/lib.sh
source "$root/conformance/lib.sh"
find_updraft guide "$root"
cd "$root"
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "guide: $tool is missing (scripts/test-all.sh installs it)" >&2; exit 2; }
done

init_work guide
EMAIL=guide@example.com
PASSWORD="guide $(token)"
mkdir "$work/data"
env -u RUST_BACKTRACE -u EDS_BACKEND_ID -u EDS_URI -u EDS_PERMISSIONS -u APP_DOMAIN -u UPDRAFT_CONFIG -u UPDRAFT_LISTEN \
  -u UPDRAFT_DATA_DIR -u UPDRAFT_ADMIN_TOKEN -u ACCESS_CONTROL -u SECURITY_TOKEN RUST_LOG=info \
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" --admin-email "$EMAIL" --admin-password "$PASSWORD" \
  --log-format json >/dev/null 2>"$work/server.log" &
server_pid=$!
wait_for_address ""
export UPDRAFT="http://$addr" EMAIL PASSWORD
for _ in $(seq 100); do curl -sf "$UPDRAFT/healthz" >/dev/null && break; sleep 0.1; done
echo "== updraft on $UPDRAFT"

# The blocks of `language` in `page`, in order, as one program.
blocks() {
  python3 - "$1" "$2" <<'PY'
import re, sys
page, language = sys.argv[1], sys.argv[2]
text = open(page).read()
for block in re.findall(r"^```" + re.escape(language) + r",test\n(.*?)^```", text, re.S | re.M):
    print(block)
PY
}

# A development backend of a new app: BACKEND and SECRET for the client pages.
new_backend() {
  local account app
  account=$(curl -sf "$UPDRAFT/v1/account/auth/oauth2/token" -d grant_type=password \
    --data-urlencode "username=$EMAIL" --data-urlencode "password=$PASSWORD" | jq -r .access_token)
  app=$(curl -sf "$UPDRAFT/v1/account/apps" -H "Authorization: Bearer $account" -d '{"name": "guide"}')
  BACKEND=$(jq -r '.environments[] | select(.name == "development") | .id' <<<"$app")
  SECRET=$(jq -r '.environments[] | select(.name == "development") | .secret' <<<"$app")
  export BACKEND SECRET
}

passed=0 failed=0
result() { # name status output-file
  if [[ $2 == 0 ]]; then
    passed=$((passed + 1)); echo "ok   $1"
  else
    failed=$((failed + 1)); echo "FAIL $1"; sed 's/^/     /' "$3" | tail -n 30
  fi
}

run_cpp() { # page program-file dir
  local dir=$3 out=$3/out.txt
  cat >"$dir/snippet.pro" <<'PRO'
QT += core network websockets
QT -= gui
CONFIG += console c++17
SOURCES += main.cpp
TARGET = snippet
PRO
  cp "$2" "$dir/main.cpp"
  if ! (cd "$dir" && /usr/lib/qt5/bin/qmake snippet.pro && make -s) >"$out" 2>&1; then return 1; fi
  (cd "$dir" && QT_QPA_PLATFORM=offscreen timeout 20 ./snippet) >"$dir/program.txt" 2>&1 &
  local program=$!
  for _ in $(seq 100); do grep -q connected "$dir/program.txt" && break; sleep 0.1; done
  curl -sf "$UPDRAFT/v1/messages" -d '{"data": "hello from the guide", "receivers": {"sockets": ["*"]}}' >/dev/null
  wait "$program"
  local status=$?
  cat "$dir/program.txt" >>"$out"
  [[ $status == 0 ]] && grep -q "hello from the guide" "$dir/program.txt"
}

for page in docs/*.md docs/clients/*.md; do
  for language in sh ruby cpp; do
    program="$work/$(basename "$page" .md).$language"
    blocks "$page" "$language" >"$program"
    [[ -s $program ]] || continue
    dir="$work/run-$(basename "$page" .md)-$language"
    mkdir -p "$dir"
    new_backend
    case $language in
      sh) (cd "$dir" && bash -euo pipefail "$program") >"$dir/out.txt" 2>&1 ;;
      ruby) (cd "$dir" && timeout 60 ruby "$program") >"$dir/out.txt" 2>&1 ;;
      cpp) run_cpp "$page" "$program" "$dir" ;;
    esac
    result "$page ($language)" $? "$dir/out.txt"
  done
done

echo "== mdBook"
mdbook="${MDBOOK:-$root/target/tools/bin/mdbook}"
if "$mdbook" build docs >"$work/book.txt" 2>&1; then
  result "mdbook build docs" 0 "$work/book.txt"
else
  result "mdbook build docs" 1 "$work/book.txt"
fi
summary "$passed" "$failed" 0
[[ $failed == 0 ]]
