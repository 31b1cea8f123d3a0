#!/usr/bin/env bash
# Case-create throughput and latency of a 3-replica tier (three cityhubd
# processes on loopback, config/examples/tier-3) against the anchor, etcd
# with 3 members as separate processes (scripts/etcdbench, 256-byte puts),
# in the same run, for BENCHMARKS.md.
#
#   scripts/bench-tier.sh [-d seconds] [-w warmup] [-c "1 64 256"] [-r rounds] [-b cases] [-e engine] [-E]
#
#   -d  measured seconds per point (10)      -w  warmup seconds per point (3)
#   -c  client counts ("1 64 256")           -e  raft log engine: wal or badger (wal)
#   -b  also measure the tier with this many cases stored first (e.g.
#       1000000: an old system's backlog through ImportCases, the fastest
#       way in; 0 skips it)
#   -E  skip etcd
#   -r  rounds (1): etcd's points and a fresh tier's gRPC points this many
#       times, one system after the other; the table gives the medians and
#       the ratio's median and range over the rounds (one run on this VM
#       moves by up to 0.2: BENCHMARKS.md). REST, -B and -b run on the
#       last round's tier, and -b's ratio divides by the median.
#   -B  also measure batched creates: ReportCases with this many reports
#       a call (cityhubload --batch), at every client count
#   -P  write CPU profiles of the leader and a follower, taken during the
#       gRPC point at 64 clients (the batched one with -B), into this
#       directory (debug.pprof on; PROFILE_CLIENTS=N profiles the point
#       at N clients instead); with -b also of the 64-client point on
#       the tier holding the backlog (stored-leader.pprof and
#       stored-follower.pprof), and both replicas' /metrics before and
#       after it (leader-metrics0.txt, leader-metrics.txt: scripts/
#       histdiff.awk gives the raft histograms' means over the point);
#       PROFILE_TRACE=S also takes S seconds of
#       the runtime's execution trace of both (leader.trace: go tool trace);
#       PROFILE_ALLOCS=1 also what both allocated over the point
#       (go tool pprof -sample_index=alloc_space -base leader-allocs0.pprof
#       leader-allocs.pprof)
#
# For each client count it prints cityhub's gRPC creates/s and p99, etcd's
# puts/s and p99, their ratio and both servers' CPU a request (the three
# processes' user+system time over the point, warmup included, divided by
# the requests; on two shared cores the steadier figure); then REST
# against gRPC at 64 clients with the CPU per create (REST is measured
# between two more gRPC points and compared with their mean, so both see
# the same store size and the same share of badger's compactions; with -P
# the REST point is profiled too, rest-leader.pprof); then, with -b, the
# same gRPC points on the tier holding the backlog, twice (right after
# the import, then again), and the ratio of the second pass to the empty
# tier. A tier's line also says how many entries its state machines
# applied a batch and how many requests the leader put in an entry (the
# joiner's groups). Every line carries the load average at its start: the
# figures mean little on a busy machine. The engine is measured: the client API in
# plain text, authentication and the per-caller rate limit off
# (BenchmarkCreateAuth in tiers/replica measures what TLS and
# authentication add).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
secs=10 warm=3 clients="1 64 256" backlog=0 engine=wal etcd=1 profiles= batch=0 rounds=1
while getopts "d:w:c:b:e:EP:B:r:" opt; do
  case $opt in
    d) secs=$OPTARG ;; w) warm=$OPTARG ;; c) clients=$OPTARG ;; b) backlog=$OPTARG ;; e) engine=$OPTARG ;; E) etcd=0 ;;
    r) rounds=$OPTARG ;;
    P) profiles=$(mkdir -p "$OPTARG" && cd "$OPTARG" && pwd) ;;
    B) batch=$OPTARG ;;
    *) sed -n '2,49p' "$0" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
pids=()
stop_all() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && { kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
(cd "$repo" && go build -o "$work/bin/" ./cmd/cityhubd ./cmd/cityhubload ./cmd/cityhubctl)
[ $etcd = 1 ] && (cd "$repo/scripts/etcdbench" && GOWORK=off go build -o "$work/bin/etcdbench" .)
for port in 7001 7002 7003 7101 7102 7103 7201 7202 7203 7401 7402 7403 12379 12380 22379 22380 32379 32380; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is in use" >&2; exit 1; fi
done
load() { awk '{print "load " $1 " " $2 " " $3}' /proc/loadavg; }
# quiet: waits until the machine is idle (written back, under 10 % of its
# CPUs busy over 2 s; at most 60 s), so what one system leaves behind (its
# page cache writeback, its last compactions) does not weigh on the next
# one's figures.
quiet() {
  sync
  local a b busy total
  for _ in $(seq 1 30); do
    read -ra a </proc/stat; sleep 2; read -ra b </proc/stat
    busy=$(( b[1] + b[2] + b[3] + b[6] + b[7] - a[1] - a[2] - a[3] - a[6] - a[7] ))
    total=$(( busy + b[4] + b[5] - a[4] - a[5] ))
    [ $total -gt 0 ] && [ $(( busy * 100 / total )) -lt 10 ] && return 0
  done
  echo "# the machine did not go quiet within 60 s"
}
# cpu_ticks PID...: user+system clock ticks of the processes so far.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
hz=$(getconf CLK_TCK)
# field NAME JSON: one number of cityhubload's (or etcdbench's) JSON.
field() { tr -d '\n ' <<<"$2" | grep -o "\"$1\":[0-9.]*" | cut -d: -f2; }
declare -A tput p99 cpu
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3), ${secs}s per point after ${warm}s warmup, raft log $engine"

# tier_work: what the tier's replicas have done so far beside serving,
# "SNAPSHOTS SECONDS COMPACTED_MB ENTRIES BATCHES": the raft snapshots taken and the
# seconds they took (cityhub_raft_snapshot_seconds) and the bytes badger's
# compactions wrote (cityhub_badger_compaction_written_bytes_total), from
# /metrics, then the entries the state machines applied and in how many
# batches, and the entries the leader proposed; 0 0 0 0 0 0 when no tier
# runs. A snapshot writes the whole state,
# and an LSM pays for a large import with compactions for a while: either
# during a point weighs on its figures.
tier_work() {
  local n
  for n in 1 2 3; do curl -sf "127.0.0.1:720$n/metrics" 2>/dev/null || true; done |
    awk '/^cityhub_raft_snapshot_seconds_count\{phase="total"\}/ {c += $2}
         /^cityhub_raft_snapshot_seconds_sum\{phase="total"\}/ {s += $2}
         /^cityhub_badger_compaction_written_bytes_total\{/ {b += $2}
         /^cityhub_raft_fsm_apply_batch_entries_sum/ {es += $2}
         /^cityhub_raft_fsm_apply_batch_entries_count/ {ec += $2}
         /^cityhub_raft_apply_total / {ap += $2}
         END {printf "%d %.1f %.0f %.0f %.0f %.0f", c, s, b / 1048576, es, ec, ap}'
}

# run_point KEY PIDS -- COMMAND...: runs one load, records throughput, p99
# and CPU per request of PIDS under KEY and prints the line (with the raft
# snapshots the replicas took and what compactions wrote meanwhile).
run_point() {
  local key=$1 ps=$2; shift 3
  local l t0 t1 out s0 s1 snaps=
  l=$(load)
  t0=$(cpu_ticks $ps)
  read -ra s0 <<<"$(tier_work)"
  out=$("$@" --json 2>"$work/last.err") || { echo "$key: failed: $(tail -3 "$work/last.err")"; return 0; }
  t1=$(cpu_ticks $ps)
  read -ra s1 <<<"$(tier_work)"
  [ "${s1[0]}" -gt "${s0[0]}" ] && snaps=$(awk -v n=$((s1[0] - s0[0])) -v a="${s0[1]}" -v b="${s1[1]}" 'BEGIN{printf "  %d raft snapshots (%.1f s)", n, b - a}')
  [ "${s1[2]}" -gt "${s0[2]}" ] && snaps="$snaps  compactions wrote $((s1[2] - s0[2])) MB"
  # The entries the replicas' state machines applied per batch (one
  # badger transaction each), over the point.
  [ "${s1[4]:-0}" -gt "${s0[4]:-0}" ] && snaps="$snaps  $(awk -v e=$((s1[3] - s0[3])) -v n=$((s1[4] - s0[4])) 'BEGIN{printf "%.1f entries an apply", e / n}')"
  # The entries the leader proposed (raft.Apply, its own jobs' few
  # included), against the requests of the point: how many reports the
  # joiner put in an entry.
  local total elapsed
  elapsed=$(awk -v a="$(field elapsed_s "$out")" -v w="$warm" 'BEGIN{print a + w}')
  total=$(awk -v r="$(field throughput_rps "$out")" -v e="$elapsed" 'BEGIN{print r * e}')
  [ "${s1[5]:-0}" -gt "${s0[5]:-0}" ] && snaps="$snaps  $(awk -v t="$total" -v n=$((s1[5] - s0[5])) 'BEGIN{printf "%.1f requests an entry", t / n}')"
  tput[$key]=$(printf '%.0f' "$(field throughput_rps "$out")")
  p99[$key]=$(printf '%.1f' "$(field p99_ms "$out")")
  cpu[$key]=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$total" 'BEGIN{ if (n > 0) printf "%.0f", d / hz * 1e6 / n; else print 0 }')
  # The load program's own CPU per request: it shares the cores with the
  # system under test.
  local ccpu
  ccpu=$(awk -v c="$(field cpu_s "$out")" -v n="$total" 'BEGIN{ if (n > 0) printf "%.0f", c * 1e6 / n; else print 0 }')
  printf '%-12s ok=%-7s failed=%-4s req/s=%-6s p50=%-6.1f p99=%-6s ms  cpu/req=%s us  client cpu/req=%s us  (%s)%s\n' "$key" "$(field ok "$out")" "$(field failed "$out")" \
    "${tput[$key]}" "$(field p50_ms "$out")" "${p99[$key]}" "${cpu[$key]}" "$ccpu" "$l" "$snaps"
}

# etcd_points SUFFIX: etcd's points on a fresh 3-member cluster, under
# the keys etcd/CLIENTS SUFFIX.
etcd_points() {
  mkdir -p "$work/etcd"
  local cluster="m1=127.0.0.1:12380,m2=127.0.0.1:22380,m3=127.0.0.1:32380" epids=() n c
  for n in 1 2 3; do
    "$work/bin/etcdbench" member --name m$n --dir "$work/etcd/m$n" --client 127.0.0.1:${n}2379 --peer 127.0.0.1:${n}2380 --cluster $cluster >"$work/etcd/m$n.log" 2>&1 &
    pids+=($!) epids+=($!)
  done
  for c in $clients; do
    run_point "etcd/$c$1" "${epids[*]}" -- "$work/bin/etcdbench" load --endpoints 127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379 \
      --clients "$c" --duration "${secs}s" --warmup "${warm}s"
  done
  stop_all
  rm -rf "$work/etcd"
  quiet
}

# start_tier: a fresh 3-replica tier; sets cpids and L (the leader's number).
start_tier() {
  rm -rf "$work/run" && mkdir -p "$work/run/data/tier-3"
  # The files the example configs name (unused with TLS and auth off).
  "$work/bin/cityhubctl" certs create --dir "$work/run/data/certs" 320582 >/dev/null
  head -c 15 /dev/urandom | base64 >"$work/run/data/tier-3/admin-password"
  cpids=()
  local n
  for n in 1 2 3; do
    (cd "$work/run" && CITYHUB_TLS_DISABLED=true CITYHUB_AUTH_DISABLED=true CITYHUB_LIMITS_RATE=0 CITYHUB_RAFT_LOG_ENGINE=$engine CITYHUB_DEBUG_PPROF=$([ -n "$profiles" ] && echo true || echo false) exec "$work/bin/cityhubd" --config "$repo/config/examples/tier-3/n$n.yaml" --log-level warn >"$work/n$n.log" 2>&1) &
    pids+=($!) cpids+=($!)
  done
  for _ in $(seq 1 200); do curl -sf 127.0.0.1:7201/readyz >/dev/null && break; sleep 0.1; done
  local leader
  leader=$(curl -s 127.0.0.1:7201/v1/cluster/status | grep -o '"leader_id": *"[^"]*"' | cut -d'"' -f4)
  L=${leader#n}
}

# median: the median of the numbers on stdin (the mean of the middle two
# of an even count).
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

cityhub() { run_point "$1" "${cpids[*]}" -- "$work/bin/cityhubload" --proto "$2" --addrs "$3" --clients "$4" --duration "${secs}s" --warmup "${warm}s"; }
# before_after WHAT PATH EXT: the leader's and the follower's PATH at the
# start and at the end of the measured seconds of the next point, into
# leader-WHAT0EXT and leader-WHATEXT (follower- likewise); profile's
# locals (f, name) say which follower and the files' prefix.
before_after() {
  local n role
  for n in "$L" "$f"; do
    role=leader
    [ "$n" = "$L" ] || role=follower
    (sleep "$warm"; curl -sf -o "$profiles/${name}$role-${1}0$3" "127.0.0.1:720$n$2"
     sleep "$secs"; curl -sf -o "$profiles/${name}$role-$1$3" "127.0.0.1:720$n$2") &
    ppids+=($!)
  done
}
# profile: CPU profiles of the leader and a follower over the measured
# seconds of the next point (after its warmup).
profile() {
  [ -n "$profiles" ] || return 0
  local f=$(( L % 3 + 1 )) name=${1:-}
  (sleep "$warm"; curl -sf -o "$profiles/${name}leader.pprof" "127.0.0.1:720$L/debug/pprof/profile?seconds=$secs") &
  ppids+=($!)
  (sleep "$warm"; curl -sf -o "$profiles/${name}follower.pprof" "127.0.0.1:720$f/debug/pprof/profile?seconds=$secs") &
  ppids+=($!)
  # Both replicas' /metrics before and after the measured seconds: the
  # raft histograms' means over the point (commit, replication round
  # trip, fsync, state machine) say where an entry's time goes.
  before_after metrics /metrics .txt
  [ -n "${PROFILE_ALLOCS:-}" ] && before_after allocs /debug/pprof/allocs .pprof
  [ -n "${PROFILE_TRACE:-}" ] || return 0
  (sleep "$warm"; curl -sf -o "$profiles/${name}leader.trace" "127.0.0.1:720$L/debug/pprof/trace?seconds=$PROFILE_TRACE") &
  ppids+=($!)
  (sleep "$warm"; curl -sf -o "$profiles/${name}follower.trace" "127.0.0.1:720$f/debug/pprof/trace?seconds=$PROFILE_TRACE") &
  ppids+=($!)
}
# The rounds: etcd's points, then a fresh tier's. Every round but the
# last stops its tier; the last one's goes on to the points below.
for r in $(seq 1 "$rounds"); do
  sfx=
  [ "$rounds" -gt 1 ] && sfx="#$r"
  [ $etcd = 1 ] && etcd_points "$sfx"
  start_tier
  ppids=()
  for c in $clients; do
    [ "$c" = "${PROFILE_CLIENTS:-64}" ] && [ "$batch" = 0 ] && [ "$r" = "$rounds" ] && profile
    cityhub "grpc/$c$sfx" grpc 127.0.0.1:710$L "$c"
  done
  [ "$r" = "$rounds" ] && break
  stop_all
  quiet
done
# The figures of the table: with rounds, the medians over them, and the
# ratio's median and range.
declare -A rmed rlo rhi
if [ "$rounds" -gt 1 ]; then
  for c in $clients; do
    for k in grpc etcd; do
      tput[$k/$c]=$(for r in $(seq 1 "$rounds"); do echo "${tput[$k/$c#$r]:-}"; done | grep . | median | xargs -r printf '%.0f' 2>/dev/null || true)
      p99[$k/$c]=$(for r in $(seq 1 "$rounds"); do echo "${p99[$k/$c#$r]:-}"; done | grep . | median | xargs -r printf '%.1f' 2>/dev/null || true)
      cpu[$k/$c]=$(for r in $(seq 1 "$rounds"); do echo "${cpu[$k/$c#$r]:-}"; done | grep . | median | xargs -r printf '%.0f' 2>/dev/null || true)
    done
    ratios=$(for r in $(seq 1 "$rounds"); do awk -v a="${tput[grpc/$c#$r]:-0}" -v b="${tput[etcd/$c#$r]:-0}" 'BEGIN{ if (b > 0 && a > 0) printf "%.2f\n", a / b }'; done)
    if [ -n "$ratios" ]; then
      rmed[$c]=$(median <<<"$ratios" | xargs printf '%.2f')
      rlo[$c]=$(sort -g <<<"$ratios" | sed -n 1p)
      rhi[$c]=$(sort -g <<<"$ratios" | sed -n '$p')
    fi
  done
fi
if [ "$batch" -gt 0 ]; then
  for c in $clients; do
    [ "$c" = 64 ] && profile
    run_point "batch/$c" "${cpids[*]}" -- "$work/bin/cityhubload" --proto grpc --addrs 127.0.0.1:710$L --clients "$c" --batch "$batch" --duration "${secs}s" --warmup "${warm}s"
  done
fi
if [ ${#ppids[@]} -gt 0 ]; then
  wait "${ppids[@]}" || echo "a profile was not taken"
  echo "profiles: $profiles/leader.pprof $profiles/follower.pprof (go tool pprof -top FILE)"
fi
# REST at 64 clients, bracketed by gRPC points on the same tier: every
# point adds some 50,000 cases, and badger's compactions grow with the
# store, so REST is compared with the mean of the gRPC points just before
# and just after it (the store as big as REST's on average), never with
# the first point of the run.
cityhub "grpc-before/64" grpc 127.0.0.1:710$L 64
ppids=()
profile rest-
cityhub "rest/64" rest 127.0.0.1:720$L 64
if [ ${#ppids[@]} -gt 0 ]; then
  wait "${ppids[@]}" || echo "a profile was not taken"
  echo "profiles of the REST point: $profiles/rest-leader.pprof $profiles/rest-follower.pprof"
fi
cityhub "grpc-after/64" grpc 127.0.0.1:710$L 64
if [ "$backlog" -gt 0 ]; then
  l=$(load)
  start=$(date +%s)
  "$work/bin/cityhubload" --addrs 127.0.0.1:710$L --backlog "$backlog" --clients 4 2>&1 | tail -1
  echo "backlog of $backlog cases stored in $(($(date +%s) - start)) s ($l)"
  # Measure once the tier is quiet again: badger compacts what the import
  # wrote for a while (at most 10 minutes; then it is measured as it is).
  start=$(date +%s)
  for _ in $(seq 1 200); do
    a=$(cpu_ticks ${cpids[*]}); sleep 3; b=$(cpu_ticks ${cpids[*]})
    [ $(( (b - a) * 100 / (3 * hz) )) -lt 10 ] && break
  done
  echo "tier quiet after $(($(date +%s) - start)) s (the three replicas under 10 % of a core)"
  # Two passes over the client counts: the first right after the import
  # pays for the compactions it left behind, which CPU idleness does not
  # show (its levels are full, and the first writes after it cascade
  # through them); the second measures the tier that holds the backlog.
  # Both are printed; the ratio to the empty tier is the second's.
  for c in $clients; do
    cityhub "stored-first/$c" grpc 127.0.0.1:710$L "$c"
  done
  ppids=()
  for c in $clients; do
    [ "$c" = 64 ] && profile stored-
    cityhub "stored/$c" grpc 127.0.0.1:710$L "$c"
  done
  [ -n "$profiles" ] && { wait "${ppids[@]}" || echo "a profile was not taken"; echo "profiles of the tier holding the backlog: $profiles/stored-leader.pprof $profiles/stored-follower.pprof"; }
fi
stop_all

echo
if [ "$rounds" -gt 1 ]; then
  echo "Medians of $rounds rounds; the ratio is the median of the rounds' ratios (their range in brackets)."
  echo
fi
echo "| clients | cityhub creates/s | etcd puts/s | ratio | cityhub p99 ms | etcd p99 ms | servers' CPU µs a request, cityhub / etcd |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for c in $clients; do
  ratio=$(awk -v a="${tput[grpc/$c]:-0}" -v b="${tput[etcd/$c]:-0}" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }')
  [ -n "${rmed[$c]:-}" ] && ratio="${rmed[$c]} (${rlo[$c]}–${rhi[$c]})"
  cpus=$(awk -v a="${cpu[grpc/$c]:-0}" -v b="${cpu[etcd/$c]:-0}" 'BEGIN{ if (a > 0 && b > 0) printf "%d / %d = %.2f", a, b, a / b; else if (a > 0) printf "%d / -", a; else print "-" }')
  echo "| $c | ${tput[grpc/$c]:--} | ${tput[etcd/$c]:--} | $ratio | ${p99[grpc/$c]:--} | ${p99[etcd/$c]:--} | $cpus |"
done
echo
awk -v r="${cpu[rest/64]:-0}" -v a="${cpu[grpc-before/64]:-0}" -v b="${cpu[grpc-after/64]:-0}" 'BEGIN{ g = (a + b) / 2; if (g > 0 && r > 0) printf "REST / gRPC CPU per create at 64 clients: %d / %d us = %.2f (gRPC: the mean of the points just before and after REST, %d and %d us)\n", r, g, r / g, a, b }'
if [ "$batch" -gt 0 ]; then
  echo
  echo "| clients | batched creates/s ($batch a call) | etcd puts/s | ratio | p99 ms | CPU us/create |"
  echo "|---:|---:|---:|---:|---:|---:|"
  for c in $clients; do
    ratio=$(awk -v a="${tput[batch/$c]:-0}" -v b="${tput[etcd/$c]:-0}" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }')
    echo "| $c | ${tput[batch/$c]:--} | ${tput[etcd/$c]:--} | $ratio | ${p99[batch/$c]:--} | ${cpu[batch/$c]:--} |"
  done
fi
if [ "$backlog" -gt 0 ]; then
  for c in $clients; do
    # The servers' CPU a create beside the throughput: on a VM whose
    # speed drifts within the hour it moves less from run to run.
    awk -v s="${tput[stored/$c]:-0}" -v f="${tput[stored-first/$c]:-0}" -v e="${tput[grpc/$c]:-0}" -v c="$c" -v n="$backlog" \
      -v sc="${cpu[stored/$c]:-0}" -v fc="${cpu[stored-first/$c]:-0}" -v ec="${cpu[grpc/$c]:-0}" \
      'BEGIN{ if (e > 0) printf "%d clients: with %d cases stored / empty: %.2f (the first pass, right after the import: %.2f); servers\047 CPU a create %d / %d us = %.2f (first pass %d us = %.2f)\n", c, n, s / e, f / e, sc, ec, (ec > 0 ? sc / ec : 0), fc, (ec > 0 ? fc / ec : 0) }'
  done
fi
