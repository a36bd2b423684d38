#!/usr/bin/env bash
# The original Ruby `qtc-cli` (qtc-sdk 0.5.0, a checkout of qtcloudservices/qtc-sdk-ruby named by
# QTC_SDK_RUBY_DIR; see README.md for why it is not in this repository) against a real `updraft`:
# only its addresses change (QTC_PLATFORM_URL, and the [datacenters] that `qtc-cli datacenters` writes to
# ~/.qtc_client). It logs in with the admin account's token, picks the cloud, creates an app with `mar create`,
# pushes a small Procfile app (app/) over git HTTP, then runs `mar list`, `mar show`, `mar envs:set`, `mar envs`,
# `mar scale`, `mar logs`, `mar restart`, `mdb create`, `mdb list` and `mdb show`, checking each one's output and,
# through the app's own answers (Host: <app-id>.<apps-domain>) or psql, its effect. Prints
# `qtc-cli: N passed, M failed, K skipped` and exits 1 on any failure.
#
# Builds and installs nothing: needs ruby with httpclient and commander (Debian: ruby ruby-httpclient
# ruby-commander; scripts/test-all.sh installs them), git, curl, python3, and what the runtime needs (root,
# bubblewrap), and for MDB a PostgreSQL server whose role may create roles and databases
# (QTC_CLI_MDB_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres, given to --mdb-postgres-url) and
# psql (without it, the one check that connects to the new database is skipped).
#   cargo build -p updraft-server && UPDRAFT_BIN=$PWD/target/debug/updraft bash interop/qtc-cli/run.sh
set -uo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/interop/qtc-cli"
# shellcheck source=conformance/lib.sh
source "$root/conformance/lib.sh"
find_updraft qtc-cli "$root"
cd "$root"

missing=()
for tool in ruby git curl python3 bwrap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if ((${#missing[@]})); then
  echo "qtc-cli: missing ${missing[*]} (scripts/test-all.sh installs them)" >&2
  exit 2
fi
if ! ruby -e 'require "httpclient"; require "commander"' 2>/dev/null; then
  echo "qtc-cli: ruby lacks httpclient or commander (Debian: ruby-httpclient ruby-commander)" >&2
  exit 2
fi

# The client is on no registry this machine reaches (RubyGems is not), and its code may not be copied here: without
# a checkout the suite says so and stops, passing nothing.
sdk="${QTC_SDK_RUBY_DIR:-}"
if [[ -z $sdk || ! -f $sdk/bin/qtc-cli ]]; then
  echo "qtc-cli: SKIPPED, no client: set QTC_SDK_RUBY_DIR to a checkout of qtcloudservices/qtc-sdk-ruby 0.5.0"
  exit 0
fi

init_work qtc-cli
# The database an MDB step made lives on the shared PostgreSQL server, not in $work: it is deleted through the API
# (which drops its database and role) before the server stops, however the suite ends.
db=""
drop_database() {
  [[ -n $db && -n ${pat:-} ]] || return 0
  curl -fsS -o /dev/null -X DELETE -H "Authorization: Bearer $pat" "$base/v1/instances/$db" ||
    echo "qtc-cli: could not delete $db; its database and role stay on $mdb_url" >&2
}
trap 'drop_database; cleanup_work' EXIT
count_skipped=1
passed=0 failed=0 skipped=0

apps_domain=apps.qtc-cli.test
admin_email=qtc-cli@example.com
admin_password="qtc-cli-$(token)"
mdb_url="${QTC_CLI_MDB_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
serve_args=(serve --listen 127.0.0.1:0 --data-dir "$work/data" --admin-email "$admin_email"
  --admin-password "$admin_password" --apps-domain "$apps_domain" --app-health-timeout-secs 20 --log-format json
  --mdb-postgres-url "$mdb_url")

mkdir -p "$work/data" "$work/home" "$work/cwd"
# A clean environment for the server: nothing inherited from the caller's UPDRAFT_*, EDS_* or APP_DOMAIN.
env -u RUST_BACKTRACE -u EDS_BACKEND_ID -u EDS_URI -u EDS_PERMISSIONS -u APP_DOMAIN -u UPDRAFT_CONFIG -u UPDRAFT_LISTEN \
  -u UPDRAFT_TLS_LISTEN -u UPDRAFT_DATA_DIR -u UPDRAFT_APPS_DOMAIN -u UPDRAFT_MDB_POSTGRES_URL \
  -u UPDRAFT_MDB_REDIS_URL RUST_LOG=info "$bin" "${serve_args[@]}" >/dev/null 2>"$work/server.log" &
server_pid=$!
wait_for_address ""
base="http://$addr"
for _ in $(seq 100); do curl -fsS -o /dev/null "$base/healthz" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "$base/healthz" || fail_setup "$base/healthz did not answer"
echo "== updraft on $base (apps on *.$apps_domain)"

# The admin account's token: the personal access token the CLI stores.
pat="$(curl -fsS "$base/v1/account/auth/oauth2/token" \
  --data-urlencode grant_type=password --data-urlencode "username=$admin_email" \
  --data-urlencode "password=$admin_password" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')" ||
  fail_setup "no token from /v1/account/auth/oauth2/token"

# ---- helpers --------------------------------------------------------------------------------------------------
# qtc ARGS...: runs the vendored qtc-cli in a directory that is no git work tree (so --app names the app), with
# the suite's HOME; its output (stdout and stderr) in `out`, its exit status in `rc`. QTC_CLI_VERBOSE=1 also prints
# both, on stderr.
qtc() {
  out="$(cd "$work/cwd" && HOME="$work/home" QTC_PLATFORM_URL="$base/v1" TERM=dumb \
    ruby -I "$here/stand-ins" -I "$sdk/lib" -r ruby_compat "$sdk/bin/qtc-cli" "$@" 2>&1 </dev/null)"
  rc=$?
  if [[ -n ${QTC_CLI_VERBOSE:-} ]]; then
    {
      echo "    \$ qtc-cli $* (exit $rc)"
      [[ -z $out ]] || sed 's/^/    | /' <<<"$out"
    } >&2
  fi
}

ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() {
  failed=$((failed + 1))
  echo "not ok - $1"
  shift
  local line
  for line in "$@"; do sed 's/^/    /' <<<"$line"; done
}
skip() { skipped=$((skipped + 1)); echo "skip - $1 ($2)"; }

# The server log's tail after a failure, the summary, and the exit status.
finish() {
  if ((failed)); then
    echo "--- server log (tail)"
    tail -n 20 "$work/server.log"
  fi
  summary "$passed" "$failed" "$skipped"
  ((failed == 0 && passed > 0))
  exit
}

# expect NAME PATTERN... -- ARGS...: `qtc-cli ARGS` exits 0 and its output matches every extended regex PATTERN.
expect() {
  local name=$1 patterns=() p
  shift
  while [[ $1 != -- ]]; do patterns+=("$1"); shift; done
  shift
  qtc "$@"
  if ((rc != 0)); then
    not_ok "$name" "qtc-cli $* exited $rc:" "$out"
    return 1
  fi
  for p in "${patterns[@]}"; do
    if ! grep -Eq -- "$p" <<<"$out"; then
      not_ok "$name" "qtc-cli $* printed no line matching /$p/:" "$out"
      return 1
    fi
  done
  ok "$name"
}

# visit: the app's answer to GET / through the router, in `page` (empty when it did not answer 200).
visit() { page="$(curl -fsS --max-time 5 -H "Host: $app.$apps_domain" "$base/" 2>/dev/null)" || page=""; }

# until_true SECONDS COMMAND...: runs COMMAND every 0.5 s until it succeeds or SECONDS pass.
until_true() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# eventually SECONDS NAME COMMAND...: the check NAME passes once COMMAND succeeds within SECONDS; a failure shows the
# app's last answer and qtc-cli's last output.
page="" out="" rc=0
eventually() {
  local seconds=$1 name=$2
  shift 2
  if until_true "$seconds" "$@"; then
    ok "$name"
  else
    not_ok "$name" "last answer of the app: '$page'" "last qtc-cli output (exit $rc):" "$out"
  fi
}

# ---- login, cloud and datacenters, as a user does them -------------------------------------------------------
expect "login --token stores the personal access token" -- login --token "$pat"
expect "clouds:list lists the cloud" '^default +Default cloud' -- clouds:list
expect "clouds:use picks it" 'Using cloud: .* \(default\)' -- clouds:use default
expect "datacenters lists this server" '^local-1 ' -- datacenters
ini="$(cat "$work/home/.qtc_client" 2>/dev/null)"
if grep -qxF -- "token = $pat" <<<"$ini"; then
  ok "~/.qtc_client has the token"
else
  not_ok "~/.qtc_client has the token" "$ini"
fi
for want in "current_cloud = default" "current_dc = local-1" "mar-local-1 = $base" "mdb-local-1 = $base"; do
  if grep -qxF -- "$want" <<<"$ini"; then ok "~/.qtc_client has '$want'"; else not_ok "~/.qtc_client has '$want'" "$ini"; fi
done

# ---- an app: created by the CLI, pushed with git ---------------------------------------------------------------
# qtc-cli prints ids in 20-character columns (`%-20.20s` in `mar list`, `mdb list`): with `mar-local-1-`, names
# of up to 8 characters keep the whole id visible.
name="a$(token | cut -c1-7)"
app="mar-local-1-$name"
expect "mar create prints the new app's id" "^$app\$" -- mar create "$name"

tree="$work/app"
cp -r "$here/app" "$tree"
git -C "$tree" init -q -b master && git -C "$tree" add -A &&
  git -C "$tree" -c user.name=qtc-cli -c user.email=qtc-cli@example.com commit -q -m app ||
  fail_setup "git commit of the app failed"
push_url="${base/http:\/\//http://x:$pat@}/$app.git"
if push_out="$(GIT_TERMINAL_PROMPT=0 git -C "$tree" push -q "$push_url" master 2>&1)"; then
  ok "git push deploys the app"
else
  not_ok "git push deploys the app" "$push_out" "(the app could not be deployed; nothing else is checked)"
  finish
fi
has_page() { visit; [[ $page == FOO=*" DYNO=web.1 BOOT="* ]]; }
eventually 30 "the app answers on $app.$apps_domain" has_page

# ---- mar list / show ---------------------------------------------------------------------------------------------
expect "mar list shows the app" '^ID +NAME +TAGS' "^$app +$name( |\$)" -- mar list
expect "mar show shows the app" "^Id: $app\$" "^Name: $name\$" '^Size: mini$' '^State: running$' '^Stack: cedar-14$' \
  '"web": 1' '"id": "web.1"' -- mar show --app "$app"

# ---- mar envs:set / envs -------------------------------------------------------------------------------------------
value="bar-$(token | cut -c1-6)"
expect "mar envs:set FOO=$value" -- mar envs:set "FOO=$value" --app "$app"
expect "mar envs shows FOO=$value" "^FOO=$value\$" '^STACK=' -- mar envs --app "$app"
foo_served() { visit; [[ $page == "FOO=$value "* ]]; }
eventually 30 "the app runs with FOO=$value" foo_served
expect "mar envs:set FOO= unsets it" -- mar envs:set "FOO=" --app "$app"
qtc mar envs --app "$app"
if ((rc == 0)) && ! grep -q '^FOO=' <<<"$out" && grep -q '^STACK=' <<<"$out"; then
  ok "mar envs no longer shows FOO"
else
  not_ok "mar envs no longer shows FOO" "exit $rc:" "$out"
fi

# ---- mar scale ------------------------------------------------------------------------------------------------------
expect "mar scale web=2" -- mar scale web=2 --app "$app"
two_up() {
  qtc mar show --app "$app"
  ((rc == 0)) && grep -q '"web": 2' <<<"$out" && grep -q '"id": "web.2"' <<<"$out" &&
    [[ $(grep -c '"state": "up"' <<<"$out") -ge 2 ]]
}
eventually 30 "mar show: structure web 2, web.1 and web.2 up" two_up
web2_serves() { visit; [[ $page == *"DYNO=web.2 "* ]]; }
eventually 20 "the router reaches web.2" web2_serves
qtc mar scale nosuch=1 --app "$app"
if ((rc != 0)) && grep -q 'nosuch is not defined in Procfile' <<<"$out"; then
  ok "mar scale refuses a type the Procfile lacks"
else
  not_ok "mar scale refuses a type the Procfile lacks" "exit $rc:" "$out"
fi

# ---- mar logs --------------------------------------------------------------------------------------------------------
expect "mar logs shows the app's output" 'qtc-cli-app started web\.1 boot=' 'qtc-cli-app started web\.2 boot=' -- \
  mar logs --app "$app"
expect "mar logs --limit 1 prints one line" -- mar logs --app "$app" --limit 1
if [[ $(grep -c . <<<"$out") == 1 ]]; then
  ok "mar logs --limit 1 is one line"
else
  not_ok "mar logs --limit 1 is one line" "$out"
fi

# ---- mar restart -----------------------------------------------------------------------------------------------------
starts() { qtc mar logs --app "$app" --limit 1000; grep -c 'qtc-cli-app started ' <<<"$out"; }
before="$(starts)"
boots_before="$(grep -o 'qtc-cli-app started .*' <<<"$out" | sed 's/.* boot=//')"
expect "mar restart" -- mar restart --app "$app"
restarted() { [[ $(starts) -ge $((before + 2)) ]]; }
eventually 30 "mar logs shows both web processes started again" restarted
new_boot() { visit; [[ -n $page ]] && ! grep -qxF -- "${page##*BOOT=}" <<<"$boots_before"; }
eventually 30 "the app answers from a new process after the restart" new_boot

# ---- mdb -------------------------------------------------------------------------------------------------------------
db_name="d$(token | cut -c1-7)"
db="mdb-local-1-$db_name"
dbname="" answer=""
expect "mdb create prints the new database's id" "^$db\$" -- mdb create "$db_name" --type postgresql:9.3
expect "mdb list shows the database" '^ID +NAME +TAGS' "^$db +$db_name( |\$)" -- mdb list
db_ready() { qtc mdb show --id "$db"; ((rc == 0)) && grep -q '^State: running$' <<<"$out"; }
until_true 30 db_ready
if expect "mdb show shows state, address, port and user" "^Id: $db\$" "^Name: $db_name\$" '^Type: ' '^State: running$' \
  '^Ip address: [^ ]+$' '^Port: [0-9]+$' '^Username: [^ ]+$' '^Password: [^ ]+$' -- mdb show --id "$db"; then
  host="$(sed -n 's/^Ip address: //p' <<<"$out")" port="$(sed -n 's/^Port: //p' <<<"$out")"
  user="$(sed -n 's/^Username: //p' <<<"$out")" password="$(sed -n 's/^Password: //p' <<<"$out")"
  if ! command -v psql >/dev/null 2>&1; then
    skip "the database answers with what mdb show printed" "no psql"
  # qtc-cli prints no database name: that one field comes from the MDB API itself.
  elif dbname="$(curl -fsS -H "Authorization: Bearer $pat" "$base/v1/services/$db" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["database"])')" &&
    answer="$(PGPASSWORD="$password" PGCONNECT_TIMEOUT=5 psql -h "$host" -p "$port" -U "$user" -d "$dbname" \
      -Atc 'select current_user' 2>&1)" && [[ $answer == "$user" ]]; then
    ok "the database answers with what mdb show printed"
  else
    not_ok "the database answers with what mdb show printed" "$answer"
  fi
else
  not_ok "the database answers with what mdb show printed" "(mdb show failed)"
fi

finish
