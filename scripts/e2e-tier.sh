#!/usr/bin/env bash
# End-to-end check of one 3-replica tier as three real cityhubd processes on
# loopback: the README's walkthrough, automated. Walks one case through every
# stage with cityhubctl and another with curl, SIGKILLs the leader, keeps
# working on the survivors, restarts the killed replica and checks it caught
# up. The replicas forward writes and run raft over mutual TLS (development
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
ctl() { "$bin/cityhubctl" "$@"; }
# The group's identity on the internal plane (CommonName 320582, the
# jurisdiction), and a neighbour's certificate of the same CA.
ctl certs create --dir "$work/certs" 320582 d-320505 >/dev/null
export CITYHUB_INTERNAL_INSECURE=false CITYHUB_INTERNAL_TLS_CA="$work/certs/ca.pem" \
  CITYHUB_INTERNAL_TLS_CERT="$work/certs/320582.pem" CITYHUB_INTERNAL_TLS_KEY="$work/certs/320582-key.pem"
start() { # start replica N
  (cd "$work" && exec "$bin/cityhubd" --config "$repo/config/examples/tier-3/n$1.yaml" >>"$work/n$1.log" 2>&1) &
  pids[$1]=$!
}
ready() { curl -sf "127.0.0.1:720$1/readyz" >/dev/null; }
wait_until() { # seconds, description, command...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" && return 0; sleep 0.1; done
  fail "timed out waiting for $what"
}
json_field() { # field name: first "field": "value" of stdin
  grep -o "\"$1\": *\"[^\"]*\"" | head -1 | sed 's/.*: *"\(.*\)"/\1/'
}
state_of() { ctl --addr "$1" -o json cases get "$2" | json_field state; }
expect_state() { local got; got=$(state_of "$1" "$2"); [ "$got" = "$3" ] || fail "case $2 is $got, want $3"; }

for port in 7001 7002 7003 7101 7102 7103 7201 7202 7203 7401 7402 7403; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then fail "port $port is already in use: stop whatever listens there"; fi
done
for n in 1 2 3; do start $n; done
for n in 1 2 3; do wait_until 30 "n$n ready" ready $n; done
step "3-replica tier is up"
ctl cluster status

# The internal plane: no ForwardService on the public listener or the REST
# gateway, and the internal listener wants the group's certificate.
if curl -sf -o /dev/null -X POST http://127.0.0.1:7201/cityhub.v1.ForwardService/Propose -d '{}'; then
  fail "the REST gateway answers ForwardService"
fi
for n in 1 2 3; do
  if curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:740$n/"; then fail "n$n's internal listener speaks plain HTTP"; fi
  for who in "" "--cert $work/certs/d-320505.pem --key $work/certs/d-320505-key.pem"; do
    # shellcheck disable=SC2086 # $who is two options or none
    if curl -s -o /dev/null --max-time 5 --http2 --cacert "$work/certs/ca.pem" $who \
      -X POST -H 'content-type: application/grpc' "https://localhost:740$n/cityhub.v1.ForwardService/Propose"; then
      fail "n$n: the internal listener completed a call from a client with [${who:-no certificate}]"
    fi
  done
done
if ! curl -s -o /dev/null --max-time 5 --http2 --cacert "$work/certs/ca.pem" \
  --cert "$work/certs/320582.pem" --key "$work/certs/320582-key.pem" \
  -X POST -H 'content-type: application/grpc' "https://localhost:7401/cityhub.v1.ForwardService/Propose"; then
  fail "n1's internal listener refused the group's certificate"
fi
step "public listeners have no ForwardService; the internal listeners take only the group's certificate"

A=127.0.0.1:7101
# Case 1 with cityhubctl: every stage, including extension and rework.
id1=$(ctl --addr $A -o json cases report --source inspector --kind component --major 01 --minor 01 \
  --grid 320582110152102 --component 3205820101000001 --desc "上水井盖缺失 missing water manhole cover" \
  --lat 31.30 --lng 120.60 --address "人民路 1 号" --actor insp-007 --role inspector | json_field id)
[ -n "$id1" ] || fail "report returned no id"
step "reported $id1 with cityhubctl"
ctl --addr $A cases act "$id1" file --actor lead-1 --role shift-leader >/dev/null
ctl --addr $A cases act "$id1" dispatch --unit water-co --unit-tier district --time-limit 6h --actor disp-1 --role dispatcher >/dev/null
ctl --addr 127.0.0.1:7102 cases act "$id1" accept --actor water-co --role handling-unit >/dev/null
ctl --addr 127.0.0.1:7103 cases act "$id1" request-extension --extension 2h --note "cover on order" --actor water-co --role handling-unit >/dev/null
ctl --addr $A cases act "$id1" approve-extension --actor disp-1 --role dispatcher >/dev/null
ctl --addr $A cases act "$id1" handle --note "cover replaced" --attach photo://after-1.jpg --actor water-co --role handling-unit >/dev/null
ctl --addr $A cases act "$id1" check-fail --note "cover loose" --actor insp-007 --role inspector >/dev/null
ctl --addr $A cases act "$id1" accept --actor water-co --role handling-unit >/dev/null
ctl --addr $A cases act "$id1" handle --note "cover fixed" --actor water-co --role handling-unit >/dev/null
ctl --addr $A cases act "$id1" check-pass --actor insp-007 --role inspector >/dev/null
ctl --addr $A cases act "$id1" close --actor lead-1 --role shift-leader >/dev/null
expect_state $A "$id1" STATE_CLOSED
if ctl --addr $A cases act "$id1" dispatch --unit x --actor disp-1 --role dispatcher 2>"$work/err"; then
  fail "dispatching a closed case succeeded"
fi
grep -q FailedPrecondition "$work/err" || fail "forbidden action did not say FailedPrecondition: $(cat "$work/err")"
step "case $id1 walked through every stage with cityhubctl; forbidden action refused"

# Case 2 with curl over REST: a citizen report, verified, returned once.
H=http://127.0.0.1:7201
post() { curl -s -w '\n%{http_code}' -X POST "$H$1" -H 'Content-Type: application/json' -d "$2"; }
ok() { local out code; out=$(post "$1" "$2"); code=${out##*$'\n'}; [ "$code" = 200 ] || fail "POST $1 -> $code: ${out%$'\n'*}"; echo "${out%$'\n'*}"; }
id2=$(ok /v1/cases '{"request_id":"e2e-curl-1","actor":"citizen-42","role":"ROLE_CITIZEN","source":"SOURCE_APP","kind":"KIND_EVENT","major_code":"01","minor_code":"02","grid_code":"320582110152103","description":"暴露垃圾 exposed garbage by the market"}' | json_field id)
step "reported $id2 with curl"
ok "/v1/cases/$id2:verify" '{"request_id":"e2e-curl-2","actor":"insp-008","role":"ROLE_INSPECTOR"}' >/dev/null
ok "/v1/cases/$id2:file" '{"request_id":"e2e-curl-3","actor":"lead-1","role":"ROLE_SHIFT_LEADER"}' >/dev/null
ok "/v1/cases/$id2:dispatch" '{"request_id":"e2e-curl-4","actor":"disp-1","role":"ROLE_DISPATCHER","unit":"parks-bureau","time_limit_minutes":240}' >/dev/null
ok "/v1/cases/$id2:requestReturn" '{"request_id":"e2e-curl-5","actor":"parks-bureau","role":"ROLE_HANDLING_UNIT","note":"not ours: sanitation"}' >/dev/null
ok "/v1/cases/$id2:approveReturn" '{"request_id":"e2e-curl-6","actor":"disp-1","role":"ROLE_DISPATCHER"}' >/dev/null
ok "/v1/cases/$id2:dispatch" '{"request_id":"e2e-curl-7","actor":"disp-1","role":"ROLE_DISPATCHER","unit":"sanitation","time_limit_minutes":240}' >/dev/null
ok "/v1/cases/$id2:accept" '{"request_id":"e2e-curl-8","actor":"sanitation","role":"ROLE_HANDLING_UNIT"}' >/dev/null
ok "/v1/cases/$id2:handle" '{"request_id":"e2e-curl-9","actor":"sanitation","role":"ROLE_HANDLING_UNIT","note":"cleared"}' >/dev/null
ok "/v1/cases/$id2:checkPass" '{"request_id":"e2e-curl-10","actor":"insp-008","role":"ROLE_INSPECTOR"}' >/dev/null
ok "/v1/cases/$id2:close" '{"request_id":"e2e-curl-11","actor":"lead-1","role":"ROLE_SHIFT_LEADER"}' >/dev/null
# A retry of the same request id changes nothing.
again=$(ok "/v1/cases/$id2:close" '{"request_id":"e2e-curl-11","actor":"lead-1","role":"ROLE_SHIFT_LEADER"}')
echo "$again" | grep -q '"replayed": *true' || fail "retry was not a replay: $again"
out=$(post "/v1/cases/$id2:handle" '{"request_id":"e2e-curl-12","actor":"sanitation","role":"ROLE_HANDLING_UNIT"}')
[ "${out##*$'\n'}" = 409 ] || fail "forbidden REST action gave ${out##*$'\n'}, want 409"
expect_state $A "$id2" STATE_CLOSED
step "case $id2 walked through every stage with curl; retry replayed; forbidden action 409"

# SIGKILL the leader and keep working on the survivors.
leader_known() { leader=$(curl -s $H/v1/cluster/status | json_field leader_id) && [ -n "$leader" ]; }
wait_until 30 "n1 to know the leader" leader_known
n=${leader#n}
step "killing leader $leader (pid ${pids[$n]}) with SIGKILL"
kill -9 "${pids[$n]}"; wait "${pids[$n]}" 2>/dev/null || true; pids[$n]=""
survivor=$(( n % 3 + 1 ))
S=127.0.0.1:710$survivor
id3=$(ctl --addr $S --timeout 30s -o json cases report --source hotline-12319 --kind event --major 05 --minor 05 \
  --grid 320582110152104 --desc "机动车乱停放 car parked on the crossing" --actor clerk-3 --role intake-clerk | json_field id)
[ -n "$id3" ] || fail "no report after the leader was killed"
ctl --addr $S cases act "$id3" verify --actor insp-007 --role inspector >/dev/null
ctl --addr $S cases act "$id3" file --actor lead-1 --role shift-leader >/dev/null
expect_state $S "$id3" STATE_FILED
newleader=$(curl -s http://127.0.0.1:720$survivor/v1/cluster/status | json_field leader_id || true)
step "survivors elected $newleader and took case $id3"

# Restart the killed replica: it catches up from the new leader.
start $n
wait_until 30 "$leader ready again" ready $n
catch_up() { [ "$(ctl --addr 127.0.0.1:710$n -o json cases get "$id3" --consistency stale 2>/dev/null | json_field state)" = STATE_FILED ]; }
wait_until 30 "$leader to catch up" catch_up
step "$leader restarted and caught up (sees $id3 in STATE_FILED from its own store)"
echo "e2e-tier: 1 passed, 0 failed"
