#!/usr/bin/env bash
# Case-create throughput and latency of a 3-replica tier (three cityhubd
# processes on loopback, config/examples/tier-3), for BENCHMARKS.md.
#   scripts/bench-tier.sh [engines] [seconds]      e.g. scripts/bench-tier.sh "wal badger" 15
# For each raft log engine it starts a fresh group, finds the leader and runs
# cityhubload over gRPC and REST with 1 and 64 clients against the leader.
# It measures the engine: the client API in plain text, authentication and
# the per-caller rate limit off (BenchmarkCreateAuth in tiers/replica
# measures what TLS and authentication add).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
engines=${1:-wal badger}
secs=${2:-15}
work=$(mktemp -d)
pids=()
stop_all() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && { kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; }; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
(cd "$repo" && go build -o "$work/bin/" ./cmd/cityhubd ./cmd/cityhubload ./cmd/cityhubctl)
for port in 7001 7002 7003 7101 7102 7103 7201 7202 7203; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo "port $port is in use" >&2; exit 1; fi
done
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3)"
for engine in $engines; do
  rm -rf "$work/run" && mkdir -p "$work/run/data/tier-3"
  # The files the example configs name (unused with TLS and auth off).
  "$work/bin/cityhubctl" certs create --dir "$work/run/data/certs" 320582 >/dev/null
  head -c 15 /dev/urandom | base64 >"$work/run/data/tier-3/admin-password"
  for n in 1 2 3; do
    (cd "$work/run" && CITYHUB_TLS_DISABLED=true CITYHUB_AUTH_DISABLED=true CITYHUB_LIMITS_RATE=0 CITYHUB_RAFT_LOG_ENGINE=$engine exec "$work/bin/cityhubd" --config "$repo/config/examples/tier-3/n$n.yaml" --log-level warn >"$work/n$n.log" 2>&1) &
    pids+=($!)
  done
  for _ in $(seq 1 100); do curl -sf 127.0.0.1:7201/readyz >/dev/null && break; sleep 0.1; done
  leader=$(curl -s 127.0.0.1:7201/v1/cluster/status | grep -o '"leader_id": *"[^"]*"' | cut -d'"' -f4)
  L=${leader#n}
  for proto in grpc rest; do
    port=710$L; [ $proto = rest ] && port=720$L
    for c in 1 64; do
      printf '%-7s %-5s %3d clients: ' "$engine" "$proto" "$c"
      "$work/bin/cityhubload" --proto $proto --addrs 127.0.0.1:$port --clients $c --duration ${secs}s --warmup 3s --json 2>/dev/null |
        tr -d '\n ' | sed 's/.*"ok":\([0-9]*\).*"failed":\([0-9]*\).*"throughput_rps":\([0-9.]*\).*"p50_ms":\([0-9.]*\).*"p90_ms":\([0-9.]*\).*"p99_ms":\([0-9.]*\).*/ok=\1 failed=\2 req\/s=\3 p50=\4ms p90=\5ms p99=\6ms/'
      echo
    done
  done
  stop_all
done
