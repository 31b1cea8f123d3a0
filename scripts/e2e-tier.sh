#!/usr/bin/env bash
# End-to-end check of one 3-replica tier as three real cityhubd processes on
# loopback: the README's walkthrough, automated, with the client API over TLS
# and authentication on (config/examples/tier-3 as printed). Logs in as the
# first administrator (auth.admin_password_file), creates the seats (shift
# leader, dispatcher, intake clerk, two inspectors, three handling units)
# and the citizens' app's API key, walks one case through every stage with
# cityhubctl (each step with its seat's login) and another with curl over
# https (tokens from POST /v1/auth/login), checks refusals (no credentials:
# 401 / Unauthenticated; a seat outside its role or scope: 403 / PermissionDenied
# naming the permission; plain text to the TLS ports fails) and the audit
# trail, SIGKILLs the leader, keeps working on the survivors, restarts the
# killed replica and checks it caught up. Then a follower's raft metadata is
# deleted while it is stopped: it refuses to start (exit status 3, naming
# the file), and `cityhubd --rejoin` replaces its data from the group (the
# leader removes and re-adds it and sends it a snapshot) with no
# administrator's login; it catches up and serves. The replicas forward writes and run raft over mutual TLS (development
# certificates for the group 320582, given through CITYHUB_INTERNAL_*); the
# script checks that the public listener has no ForwardService and that the
# internal listener refuses a caller without the group's certificate.
# Uses ports 7001-7003, 7101-7103, 7201-7203, 7401-7403 (config/examples/tier-3).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
bin="$work/bin"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do
    if [ -n "$p" ]; then kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "e2e-tier: FAIL: $*" >&2; for n in 1 2 3; do echo "--- n$n log"; tail -20 "$work/n$n.log" 2>/dev/null || true; done; exit 1; }
step() { echo "e2e-tier: $*"; }

(cd "$repo" && go build -o "$bin/" ./cmd/cityhubd ./cmd/cityhubctl)
# The files config/examples/tier-3 names relative to the working directory
# ($work): the client API's certificate (data/certs/320582.pem, valid for
# 127.0.0.1 and localhost) and the first administrator's password.
certs="$work/data/certs"
ca="$certs/ca.pem"
# The group's identity (CommonName 320582, the jurisdiction) serves the
# client API and the internal plane; a neighbour's certificate of the same
# CA is refused on the internal plane.
"$bin/cityhubctl" certs create --dir "$certs" 320582 d-320505 >/dev/null
mkdir -p "$work/data/tier-3" "$work/tok"
(umask 077; head -c 15 /dev/urandom | base64 >"$work/data/tier-3/admin-password")
export CITYHUB_INTERNAL_INSECURE=false CITYHUB_INTERNAL_TLS_CA="$ca" \
  CITYHUB_INTERNAL_TLS_CERT="$certs/320582.pem" CITYHUB_INTERNAL_TLS_KEY="$certs/320582-key.pem"
# No login of the machine's user leaks in (cityhubctl's default token files
# live under $XDG_CONFIG_HOME), and none is left behind.
export XDG_CONFIG_HOME="$work/config"
unset CITYHUB_TOKEN CITYHUB_TOKEN_FILE CITYHUB_ADDR
# ctl talks TLS; as SEAT ctl-args... sends SEAT's login (its token file).
ctl() { "$bin/cityhubctl" --tls --ca "$ca" "$@"; }
as() { local seat=$1; shift; ctl --token-file "$work/tok/$seat.json" "$@"; }
start() { # start replica N
  (cd "$work" && exec "$bin/cityhubd" --config "$repo/config/examples/tier-3/n$1.yaml" >>"$work/n$1.log" 2>&1) &
  pids[$1]=$!
}
ready() { curl -sf --cacert "$ca" "https://127.0.0.1:720$1/readyz" >/dev/null; }
wait_until() { # seconds, description, command...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" && return 0; sleep 0.1; done
  fail "timed out waiting for $what"
}
json_field() { # field name: first "field": "value" of stdin
  grep -o "\"$1\": *\"[^\"]*\"" | sed -n 1p | sed 's/.*: *"\(.*\)"/\1/'
}
state_of() { as lead-1 --addr "$1" -o json cases get "$2" | json_field state; }
expect_state() { local got; got=$(state_of "$1" "$2"); [ "$got" = "$3" ] || fail "case $2 is $got, want $3"; }

for port in 7001 7002 7003 7101 7102 7103 7201 7202 7203 7401 7402 7403; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then fail "port $port is already in use: stop whatever listens there"; fi
done
for n in 1 2 3; do start $n; done
for n in 1 2 3; do wait_until 30 "n$n ready" ready $n; done
step "3-replica tier is up (client API over TLS, authentication on)"

A=127.0.0.1:7101
# The first administrator: the leader creates admin from the password file.
admin_login() { ctl --addr $A --token-file "$work/tok/admin.json" login --user admin --password-stdin <"$work/data/tier-3/admin-password" >/dev/null 2>&1; }
wait_until 30 "the first administrator to log in" admin_login
as admin --addr $A cluster status
who=$(as admin --addr $A -o json whoami)
[ "$(echo "$who" | json_field role)" = ROLE_ADMIN ] || fail "whoami after the administrator's login: $who"
# The seats, all with one password (read from stdin, at least 10 characters).
seatpw=$(head -c 15 /dev/urandom | base64)
seat() { # name role flags...: create the account and log it in (token file per seat)
  local name=$1; shift
  printf '%s\n' "$seatpw" | as admin --addr $A accounts create "$name" --role "$@" --password-stdin >/dev/null 2>"$work/err" ||
    fail "accounts create $name: $(cat "$work/err")"
  printf '%s\n' "$seatpw" | ctl --addr $A --token-file "$work/tok/$name.json" login --user "$name" --password-stdin >/dev/null 2>"$work/err" ||
    fail "login as $name: $(cat "$work/err")"
}
seat lead-1 shift-leader --unit centre --display-name 值班长李四
seat disp-1 dispatcher --unit centre --display-name 派遣员王五
seat clerk-3 intake-clerk --unit centre --display-name 受理员赵六
seat insp-007 inspector --grids 320582110152 --display-name 监督员七
seat insp-008 inspector --grids 320582110152103 --display-name 监督员八
for u in water-co parks-bureau sanitation; do seat "$u" handling-unit --unit "$u"; done
# The citizens' app: an integrator key, reporting as SOURCE_APP only.
keyout=$(as admin --addr $A keys create --name "市民通 citizens' app" --role citizen --sources app 2>/dev/null)
appkey=${keyout%%$'\n'*} # the first line: the key, shown once
case $appkey in chk_*) ;; *) fail "keys create gave no key: $appkey" ;; esac
accounts=$(as admin --addr $A accounts list)
case $accounts in *insp-008*) ;; *) fail "accounts list lacks insp-008: $accounts" ;; esac
step "logged in as admin; created 9 seats (each logged in, one token file per seat) and the citizens' app key"

# The internal plane: no ForwardService on the public listener or the REST
# gateway, and the internal listener wants the group's certificate.
if curl -sf -o /dev/null --cacert "$ca" -H "authorization: Bearer $appkey" -X POST https://127.0.0.1:7201/cityhub.v1.ForwardService/Propose -d '{}'; then
  fail "the REST gateway answers ForwardService"
fi
for n in 1 2 3; do
  if curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:740$n/"; then fail "n$n's internal listener speaks plain HTTP"; fi
  for who in "" "--cert $certs/d-320505.pem --key $certs/d-320505-key.pem"; do
    # shellcheck disable=SC2086 # $who is two options or none
    if curl -s -o /dev/null --max-time 5 --http2 --cacert "$ca" $who \
      -X POST -H 'content-type: application/grpc' "https://localhost:740$n/cityhub.v1.ForwardService/Propose"; then
      fail "n$n: the internal listener completed a call from a client with [${who:-no certificate}]"
    fi
  done
done
if ! curl -s -o /dev/null --max-time 5 --http2 --cacert "$ca" \
  --cert "$certs/320582.pem" --key "$certs/320582-key.pem" \
  -X POST -H 'content-type: application/grpc' "https://localhost:7401/cityhub.v1.ForwardService/Propose"; then
  fail "n1's internal listener refused the group's certificate"
fi
step "public listeners have no ForwardService; the internal listeners take only the group's certificate"

# Plain text to the TLS ports fails: REST and gRPC.
for n in 1 2 3; do
  if curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:720$n/readyz"; then fail "n$n's REST port answered plain HTTP"; fi
done
if "$bin/cityhubctl" --addr $A --timeout 3s --token-file "$work/tok/lead-1.json" cluster status >/dev/null 2>"$work/err"; then
  fail "cityhubctl without --tls reached the TLS gRPC port"
fi
step "plain HTTP and plain gRPC to the TLS ports fail ($(head -1 "$work/err" | cut -c1-80))"

# No credentials: REST 401, cityhubctl Unauthenticated (no token file, no --token).
code=$(curl -s -o "$work/body" -w '%{http_code}' --cacert "$ca" "https://127.0.0.1:7201/v1/cases?page_size=1")
[ "$code" = 401 ] || fail "GET /v1/cases without credentials gave $code, want 401: $(cat "$work/body")"
code=$(curl -s -o "$work/body" -w '%{http_code}' --cacert "$ca" -H 'authorization: Bearer not-a-token' "https://127.0.0.1:7201/v1/cases?page_size=1")
[ "$code" = 401 ] || fail "GET /v1/cases with a bad token gave $code, want 401: $(cat "$work/body")"
if ctl --addr $A --token-file "$work/tok/nobody.json" cases list --limit 1 >/dev/null 2>"$work/err"; then
  fail "cityhubctl without credentials listed cases"
fi
grep -q Unauthenticated "$work/err" || fail "cityhubctl without credentials did not say Unauthenticated: $(cat "$work/err")"
curl -sf -o /dev/null --cacert "$ca" https://127.0.0.1:7201/metrics || fail "/metrics wants credentials"
step "no credentials: REST 401, cityhubctl Unauthenticated; /readyz and /metrics open"

# Case 1 with cityhubctl: every stage, including extension and rework, each
# step by its seat (actor and role come from the login).
id1=$(as insp-007 --addr $A -o json cases report --source inspector --kind component --major 01 --minor 01 \
  --grid 320582110152102 --component 3205820101000001 --desc "上水井盖缺失 missing water manhole cover" \
  --lat 31.30 --lng 120.60 --address "人民路 1 号" | json_field id)
[ -n "$id1" ] || fail "report returned no id"
step "reported $id1 with cityhubctl as insp-007"
as lead-1 --addr $A cases act "$id1" file >/dev/null
as disp-1 --addr $A cases act "$id1" dispatch --unit water-co --unit-tier district --time-limit 6h >/dev/null
as water-co --addr 127.0.0.1:7102 cases act "$id1" accept >/dev/null
as water-co --addr 127.0.0.1:7103 cases act "$id1" request-extension --extension 2h --note "cover on order" >/dev/null
as disp-1 --addr $A cases act "$id1" approve-extension >/dev/null
as water-co --addr $A cases act "$id1" handle --note "cover replaced" --attach photo://after-1.jpg >/dev/null
# Outside their grids: insp-008 patrols 320582110152103 only.
if as insp-008 --addr $A cases act "$id1" check-fail --note "not mine" 2>"$work/err" >/dev/null; then
  fail "insp-008 checked a case outside their grids"
fi
grep -q PermissionDenied "$work/err" || fail "an inspector outside their grids did not get PermissionDenied: $(cat "$work/err")"
grep -q 'case.act.ACTION_CHECK_FAIL\|case.read' "$work/err" || fail "the refusal does not name the permission: $(cat "$work/err")"
as insp-007 --addr $A cases act "$id1" check-fail --note "cover loose" >/dev/null
as water-co --addr $A cases act "$id1" accept >/dev/null
as water-co --addr $A cases act "$id1" handle --note "cover fixed" >/dev/null
as insp-007 --addr $A cases act "$id1" check-pass >/dev/null
as lead-1 --addr $A cases act "$id1" close >/dev/null
expect_state $A "$id1" STATE_CLOSED
if as disp-1 --addr $A cases act "$id1" dispatch --unit water-co 2>"$work/err"; then
  fail "dispatching a closed case succeeded"
fi
grep -q FailedPrecondition "$work/err" || fail "forbidden action did not say FailedPrecondition: $(cat "$work/err")"
# A role named on the command line that is not the login's is refused.
if as disp-1 --addr $A cases act "$id1" close --role shift-leader 2>"$work/err" >/dev/null; then
  fail "a dispatcher closed a case by naming the shift leader's role"
fi
grep -q PermissionDenied "$work/err" || fail "naming another role did not say PermissionDenied: $(cat "$work/err")"
step "case $id1 walked through every stage with cityhubctl; forbidden action refused; an inspector outside their grids and a borrowed role refused (PermissionDenied)"

# Case 2 with curl over https: a citizen report through the app's key,
# verified, returned once; the seats' tokens from POST /v1/auth/login.
H=https://127.0.0.1:7201
rest_login() { # user: print an access token
  curl -s --cacert "$ca" -X POST "$H/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"$seatpw\"}" | json_field access_token
}
declare -A tok=()
for u in lead-1 disp-1 insp-008 parks-bureau sanitation; do
  tok[$u]=$(rest_login "$u")
  [ -n "${tok[$u]}" ] || fail "POST /v1/auth/login as $u gave no access_token"
done
tok[app]=$appkey
post() { # seat path body
  curl -s --cacert "$ca" -w '\n%{http_code}' -X POST "$H$2" -H "authorization: Bearer ${tok[$1]}" -H 'Content-Type: application/json' -d "$3"
}
ok() { local out code; out=$(post "$@"); code=${out##*$'\n'}; [ "$code" = 200 ] || fail "POST $2 as $1 -> $code: ${out%$'\n'*}"; echo "${out%$'\n'*}"; }
id2=$(ok app /v1/cases '{"request_id":"e2e-curl-1","source":"SOURCE_APP","kind":"KIND_EVENT","major_code":"01","minor_code":"02","grid_code":"320582110152103","description":"暴露垃圾 exposed garbage by the market"}' | json_field id)
[ -n "$id2" ] || fail "the citizens' app's report returned no id"
step "reported $id2 with curl through the citizens' app's key"
ok insp-008 "/v1/cases/$id2:verify" '{"request_id":"e2e-curl-2"}' >/dev/null
ok lead-1 "/v1/cases/$id2:file" '{"request_id":"e2e-curl-3"}' >/dev/null
# A seat outside its role: a handling unit may not dispatch (403 naming the permission).
out=$(post parks-bureau "/v1/cases/$id2:dispatch" '{"request_id":"e2e-curl-3x","unit":"parks-bureau","time_limit_minutes":240}')
[ "${out##*$'\n'}" = 403 ] || fail "a handling unit dispatching gave ${out##*$'\n'}, want 403: ${out%$'\n'*}"
grep -q '"permission": *"case.act.ACTION_DISPATCH"' <<<"$out" || fail "the 403 does not name case.act.ACTION_DISPATCH: ${out%$'\n'*}"
ok disp-1 "/v1/cases/$id2:dispatch" '{"request_id":"e2e-curl-4","unit":"parks-bureau","time_limit_minutes":240}' >/dev/null
ok parks-bureau "/v1/cases/$id2:requestReturn" '{"request_id":"e2e-curl-5","note":"not ours: sanitation"}' >/dev/null
ok disp-1 "/v1/cases/$id2:approveReturn" '{"request_id":"e2e-curl-6"}' >/dev/null
ok disp-1 "/v1/cases/$id2:dispatch" '{"request_id":"e2e-curl-7","unit":"sanitation","time_limit_minutes":240}' >/dev/null
# The unit it was taken from no longer sees it.
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" -H "authorization: Bearer ${tok[parks-bureau]}" "$H/v1/cases/$id2")
[ "$code" = 403 ] || [ "$code" = 404 ] || fail "parks-bureau read a case dispatched to sanitation: $code"
ok sanitation "/v1/cases/$id2:accept" '{"request_id":"e2e-curl-8"}' >/dev/null
ok sanitation "/v1/cases/$id2:handle" '{"request_id":"e2e-curl-9","note":"cleared"}' >/dev/null
ok insp-008 "/v1/cases/$id2:checkPass" '{"request_id":"e2e-curl-10"}' >/dev/null
ok lead-1 "/v1/cases/$id2:close" '{"request_id":"e2e-curl-11"}' >/dev/null
# A retry of the same request id changes nothing.
again=$(ok lead-1 "/v1/cases/$id2:close" '{"request_id":"e2e-curl-11"}')
grep -q '"replayed": *true' <<<"$again" || fail "retry was not a replay: $again"
out=$(post sanitation "/v1/cases/$id2:handle" '{"request_id":"e2e-curl-12"}')
[ "${out##*$'\n'}" = 409 ] || fail "forbidden REST action gave ${out##*$'\n'}, want 409"
expect_state $A "$id2" STATE_CLOSED
step "case $id2 walked through every stage with curl; retry replayed; forbidden action 409; a handling unit dispatching 403 (case.act.ACTION_DISPATCH)"

# The audit trail names who did each step of case 1.
as admin --addr $A audit --since 1h >"$work/audit"
grep -F "$id1" "$work/audit" >"$work/audit1" || fail "the audit trail has nothing of $id1: $(cat "$work/audit")"
grep -F "$id2" "$work/audit" >"$work/audit2" || fail "the audit trail has nothing of $id2"
sed 's/^/  /' "$work/audit1"
for who in acct:insp-007 acct:lead-1 acct:disp-1 acct:water-co; do
  grep -qF "$who" "$work/audit1" || fail "the audit trail has no action of $who on $id1"
done
[ "$(wc -l <"$work/audit1")" -ge 12 ] || fail "the audit trail has $(wc -l <"$work/audit1") entries of $id1, want 12"
grep -q 'key:' "$work/audit2" || fail "the audit trail does not name the app's key for $id2: $(cat "$work/audit2")"
if as lead-1 --addr $A audit --since 1h >/dev/null 2>"$work/err"; then fail "a shift leader read the audit trail"; fi
grep -q 'audit.read' "$work/err" || fail "the shift leader's audit refusal does not name audit.read: $(cat "$work/err")"
step "cityhubctl audit lists $id1's actions with their principals; only the administrator reads it"

# SIGKILL the leader and keep working on the survivors.
leader_known() { leader=$(curl -s --cacert "$ca" -H "authorization: Bearer ${tok[lead-1]}" $H/v1/cluster/status | json_field leader_id) && [ -n "$leader" ]; }
wait_until 30 "n1 to know the leader" leader_known
n=${leader#n}
step "killing leader $leader (pid ${pids[$n]}) with SIGKILL"
kill -9 "${pids[$n]}"; wait "${pids[$n]}" 2>/dev/null || true; pids[$n]=""
survivor=$(( n % 3 + 1 ))
S=127.0.0.1:710$survivor
id3=$(as clerk-3 --addr $S --timeout 30s -o json cases report --source hotline-12319 --kind event --major 05 --minor 05 \
  --grid 320582110152104 --desc "机动车乱停放 car parked on the crossing" | json_field id)
[ -n "$id3" ] || fail "no report after the leader was killed"
as insp-007 --addr $S cases act "$id3" verify >/dev/null
as lead-1 --addr $S cases act "$id3" file >/dev/null
expect_state $S "$id3" STATE_FILED
newleader=$(curl -s --cacert "$ca" -H "authorization: Bearer ${tok[lead-1]}" https://127.0.0.1:720$survivor/v1/cluster/status | json_field leader_id || true)
step "survivors elected $newleader and took case $id3 (the seats' logins work on every replica)"

# Restart the killed replica: it catches up from the new leader.
start $n
wait_until 30 "$leader ready again" ready $n
catch_up() { [ "$(as lead-1 --addr 127.0.0.1:710$n -o json cases get "$id3" --consistency stale 2>/dev/null | json_field state)" = STATE_FILED ]; }
wait_until 30 "$leader to catch up" catch_up
step "$leader restarted and caught up (sees $id3 in STATE_FILED from its own store)"

# A damaged replica: stop a follower, delete its raft metadata; it refuses
# to start, naming the file; --rejoin replaces its data from the group.
status_of() { curl -s --cacert "$ca" -H "authorization: Bearer ${tok[lead-1]}" "https://127.0.0.1:720$1/v1/cluster/status"; }
leader=$(status_of "$n" | json_field leader_id)
d=$(( ${leader#n} % 3 + 1 ))
step "stopping follower n$d and deleting data/n$d/raft/wal-meta.db"
kill "${pids[$d]}"; wait "${pids[$d]}" 2>/dev/null || true; pids[$d]=""
rm "$work/data/n$d/raft/wal-meta.db"
set +e
(cd "$work" && "$bin/cityhubd" --config "$repo/config/examples/tier-3/n$d.yaml" >"$work/refused.log" 2>&1)
code=$?
set -e
[ "$code" = 3 ] || fail "n$d started on damaged data (exit $code): $(tail -3 "$work/refused.log")"
grep -q "data/n$d/raft/wal-meta.db is missing" "$work/refused.log" || fail "the refusal does not name the file: $(tail -3 "$work/refused.log")"
grep -q -- "--rejoin" "$work/refused.log" || fail "the refusal does not give the way out: $(tail -3 "$work/refused.log")"
step "n$d refused to start, exit 3: $(grep -o 'raft log damaged: [^:]*' "$work/refused.log" | sed -n 1p)"
id4=$(as clerk-3 --addr "127.0.0.1:710${leader#n}" -o json cases report --source hotline-12319 --kind event --major 05 --minor 05 \
  --grid 320582110152104 --desc "共享单车乱停放 bikes on the pavement" 2>/dev/null | json_field id) || true
(cd "$work" && exec "$bin/cityhubd" --config "$repo/config/examples/tier-3/n$d.yaml" --rejoin >>"$work/n$d.log" 2>&1) &
pids[$d]=$!
wait_until 60 "n$d ready after --rejoin" ready $d
ls -d "$work/data/n$d/raft.rejoin-"* >/dev/null 2>&1 || fail "n$d's raft directory was not moved aside"
caught() { [ "$(as lead-1 --addr 127.0.0.1:710$d -o json cases get "$1" --consistency stale 2>/dev/null | json_field state)" = "$2" ]; }
wait_until 60 "n$d to hold $id1" caught "$id1" STATE_CLOSED
wait_until 30 "n$d to hold $id3" caught "$id3" STATE_FILED
[ -z "$id4" ] || wait_until 30 "n$d to hold $id4" caught "$id4" STATE_REPORTED
voters=$(status_of "$d" | grep -o '"suffrage": *"Voter"' | wc -l)
[ "$voters" = 3 ] || fail "the group has $voters voters after the rejoin"
step "n$d rejoined with --rejoin (data moved aside, the leader re-added it and sent it the log), holds every case and serves; 3 voters"
echo "e2e-tier: 1 passed, 0 failed"
