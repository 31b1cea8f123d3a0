#!/usr/bin/env bash
# Rolling upgrade of a 3-replica tier from the previous release to this
# tree, with writes flowing (issue 17): three cityhubd processes of the
# previous release (UPGRADE_FROM, built from git history) on loopback with
# TLS and authentication on (config/examples/tier-3), a writer that reports
# cases through whichever replica answers and retries each with its own
# request id until acknowledged, then each replica in turn (followers first,
# the leader last) stopped with SIGTERM and started on this tree's binary,
# writes acknowledged through the mixed group at every step. At the end
# every acknowledged case is on every replica, no request id made two cases,
# and every replica registered this release's log version (the version
# gate's input: tiers/node/DESIGN.md).
# Uses ports 7001-7003, 7101-7103, 7201-7203, 7401-7403 (config/examples/tier-3).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# The previous release: the last main that CI landed before this wave.
from=${UPGRADE_FROM:-f311b1c}
work=$(mktemp -d)
bin="$work/bin"
old="$work/old-bin"
pids=()
writer=""
cleanup() {
  [ -n "$writer" ] && kill "$writer" 2>/dev/null || true
  for p in "${pids[@]:-}"; do
    if [ -n "$p" ]; then kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "e2e-upgrade: FAIL: $*" >&2; for n in 1 2 3; do echo "--- n$n log"; tail -20 "$work/n$n.log" 2>/dev/null || true; done; exit 1; }
step() { echo "e2e-upgrade: $*"; }

git -C "$repo" cat-file -e "$from^{commit}" 2>/dev/null ||
  fail "the previous release $from is not in this clone's history (a shallow clone?): git fetch --unshallow, or set UPGRADE_FROM"
mkdir -p "$work/old-src" "$old"
git -C "$repo" archive "$from" | tar -x -C "$work/old-src"
(cd "$work/old-src" && go build -o "$old/" ./cmd/cityhubd)
(cd "$repo" && go build -o "$bin/" ./cmd/cityhubd ./cmd/cityhubctl)
step "built the previous release $(git -C "$repo" rev-parse --short "$from") and this tree ($(git -C "$repo" rev-parse --short HEAD))"

certs="$work/data/certs"
ca="$certs/ca.pem"
"$bin/cityhubctl" certs create --dir "$certs" 320582 >/dev/null
mkdir -p "$work/data/tier-3" "$work/tok"
(umask 077; head -c 15 /dev/urandom | base64 >"$work/data/tier-3/admin-password")
export CITYHUB_INTERNAL_INSECURE=false CITYHUB_INTERNAL_TLS_CA="$ca" \
  CITYHUB_INTERNAL_TLS_CERT="$certs/320582.pem" CITYHUB_INTERNAL_TLS_KEY="$certs/320582-key.pem"
export XDG_CONFIG_HOME="$work/config"
unset CITYHUB_TOKEN CITYHUB_TOKEN_FILE CITYHUB_ADDR
ctl() { "$bin/cityhubctl" --tls --ca "$ca" "$@"; }
start() { # start replica N with the binary in directory $2
  (cd "$work" && exec "$2/cityhubd" --config "$repo/config/examples/tier-3/n$1.yaml" >>"$work/n$1.log" 2>&1) &
  pids[$1]=$!
}
ready() { curl -sf --cacert "$ca" "https://127.0.0.1:720$1/readyz" >/dev/null; }
wait_until() { # seconds, description, command...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" && return 0; sleep 0.1; done
  fail "timed out waiting for $what"
}
json_field() { grep -o "\"$1\": *\"[^\"]*\"" | sed -n 1p | sed 's/.*: *"\(.*\)"/\1/'; }

for port in 7001 7002 7003 7101 7102 7103 7201 7202 7203 7401 7402 7403; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then fail "port $port is already in use: stop whatever listens there"; fi
done
for n in 1 2 3; do start $n "$old"; done
for n in 1 2 3; do wait_until 60 "n$n ready" ready $n; done
A=127.0.0.1:7101
admin_login() { ctl --addr $A --token-file "$work/tok/admin.json" login --user admin --password-stdin <"$work/data/tier-3/admin-password" >/dev/null 2>&1; }
wait_until 30 "the first administrator to log in" admin_login
pw=$(head -c 15 /dev/urandom | base64)
printf '%s\n' "$pw" | ctl --addr $A --token-file "$work/tok/admin.json" accounts create clerk-1 --role intake-clerk --unit centre --password-stdin >/dev/null 2>"$work/err" ||
  fail "accounts create: $(cat "$work/err")"
printf '%s\n' "$pw" | ctl --addr $A --token-file "$work/tok/clerk.json" login --user clerk-1 --password-stdin >/dev/null 2>"$work/err" ||
  fail "login as clerk-1: $(cat "$work/err")"
step "3 replicas of the previous release are up; clerk-1 logged in"

# The writer: report i with request id upgrade-i through replica (i mod 3),
# the next replica on failure, the same request id until acknowledged.
grid=320582110152104
acked="$work/acked"
: >"$acked"
write_loop() {
  local i=0 n id tries
  while [ ! -e "$work/stop-writer" ]; do
    i=$((i + 1))
    tries=0
    while :; do
      n=$(( (i + tries) % 3 + 1 ))
      id=$(ctl --addr 127.0.0.1:710$n --token-file "$work/tok/clerk.json" --timeout 5s -o json cases report \
        --source hotline-12319 --kind event --major 05 --minor 05 --grid $grid \
        --desc "升级期间的上报 report $i during the upgrade" --request-id "upgrade-$i" 2>/dev/null | json_field id || true)
      if [ -n "$id" ]; then echo "upgrade-$i $id" >>"$acked"; break; fi
      tries=$((tries + 1))
      [ "$tries" -lt 600 ] || { echo "writer: report $i never acknowledged" >"$work/writer-failed"; return; }
      sleep 0.1
    done
  done
}
write_loop &
writer=$!
count() { wc -l <"$acked"; }
acked_at_least() { [ "$(count)" -ge "$1" ]; }
wait_until 60 "10 writes acknowledged by the previous release" acked_at_least 10

leader_of() { ctl --addr 127.0.0.1:710$1 --token-file "$work/tok/admin.json" -o json cluster status 2>/dev/null | json_field leader_id; }
leader=""
find_leader() { for n in 1 2 3; do leader=$(leader_of $n) && [ -n "$leader" ] && return 0; done; return 1; }
wait_until 30 "a leader" find_leader
ln=${leader#n}
order=()
for n in 1 2 3; do [ "$n" = "$ln" ] || order+=("$n"); done
order+=("$ln")
step "leader is $leader: upgrading n${order[0]}, n${order[1]}, then the leader n${order[2]}, with writes flowing"

for n in "${order[@]}"; do
  before=$(count)
  kill -TERM "${pids[$n]}"
  wait "${pids[$n]}" 2>/dev/null || true
  pids[$n]=""
  start "$n" "$bin"
  wait_until 60 "n$n ready on this release" ready "$n"
  wait_until 90 "10 more writes acknowledged after n$n's upgrade" acked_at_least $((before + 10))
  [ -e "$work/writer-failed" ] && fail "$(cat "$work/writer-failed")"
  step "n$n runs this release; $(count) writes acknowledged so far"
done

touch "$work/stop-writer"
wait "$writer" 2>/dev/null || true
writer=""
[ -e "$work/writer-failed" ] && fail "$(cat "$work/writer-failed")"
total=$(count)
ids=$(cut -d' ' -f2 "$acked" | sort -u | wc -l)
[ "$ids" = "$total" ] || fail "$total acknowledged request ids made $ids distinct cases"

# Every acknowledged case on every replica, from its own store once caught up.
last=$(tail -1 "$acked" | cut -d' ' -f2)
for n in 1 2 3; do
  caught_up() { ctl --addr 127.0.0.1:710$n --token-file "$work/tok/clerk.json" cases get "$last" --consistency stale >/dev/null 2>&1; }
  wait_until 60 "n$n to hold the last acknowledged case" caught_up
  listed=$(ctl --addr 127.0.0.1:710$n --token-file "$work/tok/clerk.json" -o json cases list --grid-prefix $grid --limit 500 --consistency stale 2>/dev/null |
    grep -o '"id": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/' | sort -u)
  missing=$(cut -d' ' -f2 "$acked" | sort -u | comm -23 - <(echo "$listed") | sed -n 1,5p)
  [ -z "$missing" ] || fail "n$n lacks acknowledged cases: $missing"
  extra=$(( $(echo "$listed" | grep -c .) - total ))
  [ "$extra" = 0 ] || fail "n$n lists $extra cases more than the $total acknowledged (a retried request id made a second case?)"
done
step "all $total acknowledged cases are on every replica, each once"

# Each replica registered again under this release, with its log version
# (the gate's input; the previous release registered none).
members_registered() {
  members=$(ctl --addr $A --token-file "$work/tok/admin.json" -o json cluster status 2>/dev/null) &&
    [ "$(echo "$members" | grep -o '"log_version": *[1-9][0-9]*' | wc -l)" = 3 ]
}
wait_until 30 "every replica to register its log version" members_registered
step "every replica registered its log version: $(echo "$members" | grep -o '"log_version": *[0-9]*' | tr -d ' "' | sort | uniq -c | xargs)"
echo "e2e-upgrade: 1 passed, 0 failed"
