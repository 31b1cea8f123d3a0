#!/usr/bin/env bash
# End-to-end check of a federation as real cityhubd processes on loopback:
# a city → district → street → community chain of 3-replica nodes,
# mTLS on every link, the city–district link through toxiproxy. While
# cmd/cityhubfedcheck reports cases at the city and walks them to closure at
# the node that holds them, this SIGKILLs the city's leader and the
# district's leader (restarting each after a few seconds) and cuts the
# city–district link for ~5 s, checking that the district keeps working its
# own cases meanwhile. The driver then checks every case arrived exactly
# once at its holder and every copy on the way converged on the holder's,
# with its full history in order.
#
# The client API of every node runs over TLS (the node's certificate) with
# authentication on: each node makes its first administrator from its own
# password file (auth.admin_password_file); the driver logs in as each
# administrator, makes its seats (shift leader, dispatcher, inspector, the
# node's handling unit) and sends every call as the seat its request names;
# this script's own calls (cityhubctl, curl) use seats it makes the same way.
#
# Ports: 17001-17033 raft, 17101-17133 gRPC, 17201-17233 HTTP, 17301-17333
# federation, 17400 toxiproxy's API, 17411-17413 and 17421-17423 its proxies,
# 17501-17533 the replicas' internal listeners (write forwarding; it and raft
# run over mTLS with the node's certificate, as the federation links do).
# Toxiproxy is built from the Go module proxy into bin/ when missing.
# E2E_FED_CASES (300) and E2E_FED_SPREAD (30s) set the load; KEEP=1 keeps
# the work directory (configs, logs, data).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
TOXIPROXY_VERSION=v2.5.0
CASES=${E2E_FED_CASES:-300}
SPREAD=${E2E_FED_SPREAD:-30s}
work=$(mktemp -d)
bin="$work/bin"
declare -A pids=()
toxi_pid=""
driver_pid=""
cleanup() {
  local p
  for p in "${pids[@]}" "$toxi_pid" "$driver_pid"; do
    if [ -n "$p" ]; then kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  if [ "${KEEP:-}" = 1 ]; then echo "e2e-federation: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
step() { echo "e2e-federation: $(date +%T) $*"; }
fail() { # the logs' tails first and the reason last, so a CI that keeps only the end of the output keeps the reason
  local f
  for f in "$work"/logs/*.log; do
    case $f in */driver.log) continue ;; esac
    echo "--- $(basename "$f")"; tail -15 "$f"
  done
  if [ -s "$work/logs/driver.out" ]; then echo "--- driver.out"; tail -40 "$work/logs/driver.out"; fi
  echo "e2e-federation: FAIL: $*" >&2
  echo "e2e-federation: 0 passed, 1 failed"
  exit 1
}
wait_until() { # seconds, description, command...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" && return 0; sleep 0.1; done
  fail "timed out waiting for $what"
}
json_field() { # field name: first "field": "value" of stdin
  grep -o "\"$1\": *\"[^\"]*\"" | sed -n 1p | sed 's/.*: *"\(.*\)"/\1/'
}

# The chain: name tier jurisdiction replicas, with each node's index k
# giving its ports (raft 17001+10k.., gRPC 17101+10k.., HTTP 17201+10k..,
# federation 17301+10k..).
names=(city d-320505 s-320505001 c-320505001001)
tiers=(city district street community)
jurs=(320500 320505 320505001 320505001001)
counts=(3 3 3 3)
units=("city-water city-parks" "320505-roads 320505-sanitation" "320505001-squad" "320505001001-grid")
addrs() { # k base: the node's addresses on base+10k+r
  local k=$1 base=$2 out="" r
  for r in $(seq 1 "${counts[$k]}"); do out+="${out:+,}127.0.0.1:$((base + 10 * k + r))"; done
  echo "$out"
}
TOXI=127.0.0.1:17400
for k in 0 1 2 3; do
  for r in $(seq 1 "${counts[$k]}"); do
    for base in 17000 17100 17200 17300 17500; do ports+=($((base + 10 * k + r))); done
  done
done
ports+=(17400 17411 17412 17413 17421 17422 17423)
for port in "${ports[@]}"; do
  if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then fail "port $port is already in use: stop whatever listens there"; fi
done

mkdir -p "$work/logs" "$work/conf"
step "building cityhubd, cityhubctl, cityhubfedcheck"
(cd "$repo" && go build -o "$bin/" ./cmd/cityhubd ./cmd/cityhubctl ./cmd/cityhubfedcheck)
toxiproxy="$repo/bin/toxiproxy-server-$TOXIPROXY_VERSION"
if [ ! -x "$toxiproxy" ]; then
  step "installing toxiproxy $TOXIPROXY_VERSION into bin/"
  mkdir -p "$repo/bin" "$work/gobin"
  GOBIN="$work/gobin" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv "$work/gobin/server" "$toxiproxy"
fi
ca="$work/certs/ca.pem"
# No login of the machine's user leaks in (cityhubctl's default token files
# live under $XDG_CONFIG_HOME); every call here names its token file.
export XDG_CONFIG_HOME="$work/config"
unset CITYHUB_TOKEN CITYHUB_TOKEN_FILE CITYHUB_ADDR
ctl() { "$bin/cityhubctl" --tls --ca "$ca" "$@"; }
as() { local seat=$1; shift; ctl --token-file "$work/tok/$seat.json" "$@"; } # as SEAT ctl-args...

# mTLS identities for every node: the certificates name the node, and a
# client checks the name of the node it dials, through the proxy too. The
# same certificate (valid for 127.0.0.1) serves the node's client API.
"$bin/cityhubctl" certs create --dir "$work/certs" "${names[@]}" >/dev/null
# Each node's first administrator's password, a file per node.
mkdir -p "$work/secrets" "$work/tok"
chmod 700 "$work/secrets"
for name in "${names[@]}"; do (umask 077; head -c 15 /dev/urandom | base64 >"$work/secrets/$name"); done

# The topology, seen by each node: the city dials the district's replicas
# through proxies dist-1..3, the district dials the city's through
# city-1..3; the other nodes see the real addresses.
topology() { # file, city replicas, district replicas
  {
    echo "nodes:"
    local k u reps
    for k in 0 1 2 3; do
      case $k in 0) reps=$2 ;; 1) reps=$3 ;; *) reps=$(addrs $k 17300) ;; esac
      echo "  - name: ${names[$k]}"
      echo "    tier: ${tiers[$k]}"
      echo "    jurisdiction: \"${jurs[$k]}\""
      [ "$k" -gt 0 ] && echo "    parent: ${names[$((k - 1))]}"
      echo "    replicas: [${reps//,/, }]"
      echo "    units:"
      for u in ${units[$k]}; do echo "      - {id: $u, name: $u}"; done
    done
  } >"$1"
}
topology "$work/conf/topology-city.yaml" "$(addrs 0 17300)" "127.0.0.1:17421,127.0.0.1:17422,127.0.0.1:17423"
topology "$work/conf/topology-district.yaml" "127.0.0.1:17411,127.0.0.1:17412,127.0.0.1:17413" "$(addrs 1 17300)"
topology "$work/conf/topology.yaml" "$(addrs 0 17300)" "$(addrs 1 17300)"

replica_config() { # k r: the YAML of replica r of node k
  local k=$1 r=$2 name=${names[$1]} topo="$work/conf/topology.yaml" i
  case $k in 0) topo="$work/conf/topology-city.yaml" ;; 1) topo="$work/conf/topology-district.yaml" ;; esac
  cat <<EOF
node:
  id: $name-$r
  data_dir: $work/data/$name-$r
  tier: ${tiers[$k]}
  jurisdiction: "${jurs[$k]}"
raft:
  addr: 127.0.0.1:$((17000 + 10 * k + r))
  bootstrap: true
  peers:
EOF
  for i in $(seq 1 "${counts[$k]}"); do
    cat <<EOF
    - id: $name-$i
      raft_addr: 127.0.0.1:$((17000 + 10 * k + i))
      grpc_addr: 127.0.0.1:$((17100 + 10 * k + i))
      http_addr: 127.0.0.1:$((17200 + 10 * k + i))
      internal_addr: 127.0.0.1:$((17500 + 10 * k + i))
EOF
  done
  cat <<EOF
grpc:
  addr: 127.0.0.1:$((17100 + 10 * k + r))
http:
  addr: 127.0.0.1:$((17200 + 10 * k + r))
federation:
  topology: $topo
  node: $name
  addr: 127.0.0.1:$((17300 + 10 * k + r))
  tls:
    ca: $work/certs/ca.pem
    cert: $work/certs/$name.pem
    key: $work/certs/$name-key.pem
  retry_min: 50ms
  retry_max: 1s
internal:
  addr: 127.0.0.1:$((17500 + 10 * k + r))
  # mTLS between the replicas (forwarding, raft) with federation.tls: its
  # CommonName is the node's name, the group's name.
  insecure: false
tls:
  cert: $work/certs/$name.pem
  key: $work/certs/$name-key.pem
  ca: $work/certs/ca.pem
auth:
  admin_password_file: $work/secrets/$name
EOF
}
start() { # id (name-r), k, r
  (exec "$bin/cityhubd" --config "$work/conf/$1.yaml" >>"$work/logs/$1.log" 2>&1) &
  pids[$1]=$!
}
ready() { curl -sf --cacert "$ca" "https://127.0.0.1:$1/readyz" >/dev/null; }

# Toxiproxy and its six proxies.
("$toxiproxy" -host 127.0.0.1 -port 17400 >>"$work/logs/toxiproxy.log" 2>&1) &
toxi_pid=$!
wait_until 20 "toxiproxy" curl -sf "http://$TOXI/version" -o /dev/null
proxy() { # name listen upstream
  curl -sf -X POST "http://$TOXI/proxies" -d "{\"name\":\"$1\",\"listen\":\"$2\",\"upstream\":\"$3\",\"enabled\":true}" >/dev/null ||
    fail "toxiproxy: could not create proxy $1"
}
for r in 1 2 3; do
  proxy "city-$r" "127.0.0.1:$((17410 + r))" "127.0.0.1:$((17300 + r))"
  proxy "dist-$r" "127.0.0.1:$((17420 + r))" "127.0.0.1:$((17310 + r))"
done
set_proxies() { # true|false
  local p
  for p in city-1 city-2 city-3 dist-1 dist-2 dist-3; do
    curl -sf -X POST "http://$TOXI/proxies/$p" -d "{\"enabled\":$1}" >/dev/null || fail "toxiproxy: could not set $p enabled=$1"
  done
}

for k in 0 1 2 3; do
  for r in $(seq 1 "${counts[$k]}"); do
    replica_config $k "$r" >"$work/conf/${names[$k]}-$r.yaml"
    start "${names[$k]}-$r"
  done
done
for k in 0 1 2 3; do
  for r in $(seq 1 "${counts[$k]}"); do wait_until 60 "${names[$k]}-$r ready" ready $((17200 + 10 * k + r)); done
done
step "federation up: ${#pids[@]} cityhubd processes, mTLS on every link, city–district through toxiproxy, client API over TLS with authentication"

# Every node's administrator logs in (any replica: the login is the node's).
admin_login() { # k
  ctl --addr "127.0.0.1:$((17101 + 10 * $1))" --timeout 3s --token-file "$work/tok/${names[$1]}-admin.json" \
    login --user admin --password-stdin <"$work/secrets/${names[$1]}" >/dev/null 2>&1
}
for k in 0 1 2 3; do wait_until 30 "${names[$k]}'s first administrator to log in" admin_login $k; done
# This script's own seats at the city and the district (the driver makes its own).
seatpw=$(head -c 15 /dev/urandom | base64)
seat() { # k name role flags...: create the account at node k and log it in
  local k=$1 name=$2; shift 2
  local a="127.0.0.1:$((17101 + 10 * k))"
  printf '%s\n' "$seatpw" | as "${names[$k]}-admin" --addr "$a" accounts create "$name" --role "$@" --password-stdin >/dev/null 2>"$work/err" ||
    fail "accounts create $name at ${names[$k]}: $(cat "$work/err")"
  printf '%s\n' "$seatpw" | ctl --addr "$a" --token-file "$work/tok/$name.json" login --user "$name" --password-stdin >/dev/null 2>"$work/err" ||
    fail "login as $name at ${names[$k]}: $(cat "$work/err")"
}
seat 0 insp-c inspector --grids 320505001001005
seat 0 lead-c shift-leader
seat 0 disp-c dispatcher
seat 1 insp-d inspector --grids 320505002001003
seat 1 lead-d shift-leader
seat 1 disp-d dispatcher
seat 1 320505-sanitation handling-unit --unit 320505-sanitation
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca" "https://127.0.0.1:17201/v1/federation/links")
[ "$code" = 401 ] || fail "the city's links without credentials: $code, want 401"
if curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:17201/readyz"; then fail "the city's REST port answered plain HTTP"; fi
step "every node's administrator logged in; the script's seats made at the city and the district; no credentials 401, plain HTTP refused"

# leader K: the replica id that leads node k, asked of its replicas in turn.
leader() {
  local k=$1 r id
  for r in $(seq 1 "${counts[$k]}"); do
    id=$(as "${names[$k]}-admin" --addr "127.0.0.1:$((17100 + 10 * k + r))" --timeout 2s -o json cluster status 2>/dev/null | json_field leader_id) || true
    if [ -n "$id" ]; then echo "$id"; return 0; fi
  done
  return 1
}
leader_is() { killed=$(leader "$1"); } # k: node k's leader into $killed
kill_leader() { # k: SIGKILL node k's leader, named in $killed
  wait_until 20 "a leader of ${names[$1]}" leader_is "$1"
  [ -n "${pids[$killed]:-}" ] || fail "${names[$1]}'s leader $killed is not one of the running processes"
  step "SIGKILL ${names[$1]}'s leader $killed (pid ${pids[$killed]})"
  kill -9 "${pids[$killed]}"; wait "${pids[$killed]}" 2>/dev/null || true
  pids[$killed]=""
}

fed=()
for k in 0 1 2 3; do
  fed+=(--node "${names[$k]}=$(addrs $k 17100)" --unit "${names[$k]}=${units[$k]%% *}")
done
fed+=(--ca "$ca" --admin-password-file "$work/secrets")
step "driver: $CASES cases reported at the city over $SPREAD, dispatched round robin to a unit of every tier"
"$bin/cityhubfedcheck" "${fed[@]}" --grid 320505001001007 --cases "$CASES" --spread "$SPREAD" \
  --extra "$work/extra" >"$work/logs/driver.out" 2>"$work/logs/driver.log" &
driver_pid=$!
: >"$work/extra"
# The driver first logs in at every node and makes its seats; the faults
# below start with its load.
load_started() {
  grep -q 'load started' "$work/logs/driver.log" 2>/dev/null && return 0
  kill -0 "$driver_pid" 2>/dev/null || { cat "$work/logs/driver.out" "$work/logs/driver.log"; fail "cityhubfedcheck exited before its load started"; }
  return 1
}
wait_until 120 "the driver's seats and its load" load_started
step "driver logged in at every node as its administrator and as its seats; load started"
started=$SECONDS

sleep 4
kill_leader 0
sleep 3
start "$killed"; step "restarted $killed"
sleep 4
kill_leader 1
sleep 3
start "$killed"; step "restarted $killed"
sleep 4

# Partition the city from the district. The district keeps taking its own
# cases; they reach the city only after the link heals.
set_proxies false
cut=$SECONDS
step "city–district link cut"
D="$(addrs 1 17100)"
C="$(addrs 0 17100)"
nctl() { # replicas, seat, request-id, cityhubctl args...: as the seat on any replica of a node, same request id
  local reps=$1 who=$2 rid=$3 a round; shift 3
  for round in 1 2 3 4 5; do
    for a in ${reps//,/ }; do
      if out=$(as "$who" --addr "$a" --timeout 3s -o json "$@" --request-id "$rid" 2>"$work/err"); then echo "$out"; return 0; fi
    done
    sleep 0.5
  done
  fail "during the partition: cityhubctl $* failed: $(cat "$work/err")"
}
dctl() { nctl "$D" "$@"; } # on the district
cctl() { nctl "$C" "$@"; } # on the city
lid=$(dctl insp-d "part-report" cases report --source inspector --kind event --major 01 --minor 02 --grid 320505002001003 \
  --desc "暴露垃圾 reported while the city is cut off" | json_field id)
[ -n "$lid" ] || fail "the district took no report during the partition"
dctl lead-d "part-file" cases act "$lid" file >/dev/null
dctl disp-d "part-dispatch" cases act "$lid" dispatch --unit 320505-sanitation --time-limit 4h >/dev/null
dctl 320505-sanitation "part-accept" cases act "$lid" accept >/dev/null
echo "$lid d-320505 d-320505" >>"$work/extra"
step "district took, filed, dispatched and accepted $lid on its own during the partition"
absent() { # replicas, node name, seat, case id: a replica answers NotFound (none has the case)
  local reps=$1 name=$2 who=$3 id=$4 a round
  for round in 1 2 3 4 5; do
    for a in ${reps//,/ }; do
      if as "$who" --addr "$a" --timeout 3s cases get "$id" >/dev/null 2>"$work/err"; then
        fail "$name has $id although the city–district link is cut"
      fi
      grep -q NotFound "$work/err" && return 0
    done
    sleep 0.5
  done
  fail "reading $id at $name: $(cat "$work/err")"
}
absent "$C" city lead-c "$lid"
lag_of_city() { # lag_entries of the city leader's link to the district
  local id r
  id=$(leader 0) || return 1
  r=${id##*-}
  curl -sf --cacert "$ca" -H "authorization: Bearer $(json_field access_token <"$work/tok/city-admin.json")" \
    "https://127.0.0.1:$((17200 + r))/v1/federation/links" | tr -d '\n ' |
    grep -o '{[^{}]*"peer":"d-320505"[^{}]*}' | grep -o '"lag_entries":"\?[0-9]*' | grep -o '[0-9]*$'
}
# The city hands a case of its own down to the district meanwhile: it waits
# in the city's outbox (whatever the driver is doing at this moment).
cid=$(cctl insp-c "part-city-report" cases report --source inspector --kind event --major 01 --minor 02 --grid 320505001001005 \
  --desc "暴露垃圾 reported at the city while the district is cut off" | json_field id)
[ -n "$cid" ] || fail "the city took no report during the partition"
cctl lead-c "part-city-file" cases act "$cid" file >/dev/null
cctl disp-c "part-city-dispatch" cases act "$cid" dispatch --unit 320505-roads --time-limit 4h >/dev/null
echo "$cid d-320505 city" >>"$work/extra"
absent "$D" d-320505 lead-d "$cid"
lagging() { lag=$(lag_of_city) && [ "${lag:-0}" -gt 0 ]; }
wait_until 20 "the city's link to the district to show lag during the partition" lagging
step "the city does not have $lid, the district not $cid (handed down by the city meanwhile); the city's link to the district has $lag entries waiting"
while [ $((SECONDS - cut)) -lt 5 ]; do sleep 0.2; done
set_proxies true
step "city–district link healed after $((SECONDS - cut)) s"

rc=0
wait "$driver_pid" || rc=$?
driver_pid=""
if [ "$rc" -ne 0 ]; then
  echo "--- driver.log"; tail -20 "$work/logs/driver.log"
  fail "cityhubfedcheck exited $rc: $(grep -a -m3 'FAIL\|violation\|error' "$work/logs/driver.out" "$work/logs/driver.log" | tail -3 | cut -c1-600)"
fi
cat "$work/logs/driver.out"
step "done in $((SECONDS - started)) s after the load started"
echo "e2e-federation: 1 passed, 0 failed"
