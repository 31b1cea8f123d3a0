#!/usr/bin/env bash
# Checks the deployment files against the code and the operators' tools
# (`make deploy-check`, run by CI; issue 17, acceptance 1 and 3):
#
#  1. the image: `make image` (scripts/image.sh, no container engine), then
#     TestImage reads its OCI configuration (a user that is not root, the
#     entrypoint, the data volume) and layer, and runs the cityhubd taken
#     out of it (--version must match the image's version label; inside
#     the image's file system as its user with chroot where allowed). Where
#     podman works, the image also runs in a container.
#  2. the systemd unit: systemd-analyze verify (its binary path pointed at
#     the image's cityhubd; any warning fails) and systemd-analyze security
#     --offline (the exposure must stay below 2.5, "OK").
#  3. Prometheus: promtool check rules and test rules on the alert rules;
#     TestDashboardAndAlertsNameExportedMetrics runs a small federation and
#     checks every metric the dashboard and the rules name is exported, and
#     promtool check metrics lints what a node exports.
#
# Installs what it lacks when run as root (CI): umoci and systemd from
# Debian; promtool is taken out of Debian's prometheus package into bin/
# (the package is not installed: no Prometheus service is started).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
GO=${GO:-go}
step() { echo "deploy-check: $*"; }
fail() {
  echo "deploy-check: FAIL: $*" >&2
  echo "deploy-check: 0 passed, 1 failed"
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

apt_updated=""
apt_install() {
  [ "$(id -u)" = 0 ] || fail "missing $*: install it (Debian: apt-get install $*)"
  export DEBIAN_FRONTEND=noninteractive
  [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
command -v umoci >/dev/null 2>&1 || { step "installing umoci"; apt_install umoci; }
command -v systemd-analyze >/dev/null 2>&1 || { step "installing systemd (systemd-analyze)"; apt_install systemd; }
promtool="$repo/bin/promtool"
if [ ! -x "$promtool" ]; then
  if command -v promtool >/dev/null 2>&1; then
    promtool=$(command -v promtool)
  else
    [ "$(id -u)" = 0 ] || fail "promtool is missing (Debian package prometheus, or bin/promtool)"
    step "taking promtool out of Debian's prometheus package into bin/"
    [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
    (cd "$work" && chmod 777 . && apt-get download -qq prometheus >/dev/null 2>&1) || fail "apt-get download prometheus"
    dpkg-deb -x "$work"/prometheus_*.deb "$work/prom"
    mkdir -p "$repo/bin"
    install -m 0755 "$work/prom/usr/bin/promtool" "$promtool"
  fi
fi
"$promtool" --version 2>&1 | sed -n 1p

passed=0
step "1. the image"
scripts/image.sh
tag=$(cat bin/image/version)
oci="$repo/bin/image/oci"
out=$(CITYHUB_IMAGE="$oci" CITYHUB_IMAGE_TAG="$tag" "$GO" test -count=1 -run '^TestImage$' -v ./config/deploy/ 2>&1) || { echo "$out"; fail "TestImage"; }
echo "$out" | grep -E '^\s+image_test.go' || true
grep -q -- '--- PASS: TestImage' <<<"$out" || { echo "$out"; fail "TestImage did not run"; }
passed=$((passed + 1))
if command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1; then
  podman load -q -i "bin/image/cityhub-$tag.tar" >/dev/null
  v=$(podman run --rm "localhost/cityhub:$tag" --version) || fail "podman run cityhub:$tag --version"
  step "in a container: $v"
else
  step "no container runtime works here: the image's configuration was checked and its cityhubd run out of it (TestImage)"
fi

step "2. the systemd unit"
mkdir -p "$work/unit" "$work/bundle"
if [ "$(id -u)" = 0 ]; then umoci unpack --image "$oci:$tag" "$work/bundle" >/dev/null; else umoci unpack --rootless --image "$oci:$tag" "$work/bundle" >/dev/null; fi
bin="$work/bundle/rootfs/usr/local/bin/cityhubd"
[ -x "$bin" ] || fail "no cityhubd in the unpacked image"
sed "s#/usr/local/bin/cityhubd#$bin#" config/deploy/systemd/cityhubd@.service >"$work/unit/cityhubd@.service"
verify=$(systemd-analyze verify "$work/unit/cityhubd@d-320582-1.service" 2>&1) || { echo "$verify"; fail "systemd-analyze verify"; }
[ -z "$verify" ] || { echo "$verify"; fail "systemd-analyze verify warned"; }
security=$(systemd-analyze security --offline=yes --threshold=25 "$work/unit/cityhubd@d-320582-1.service" 2>&1) || { echo "$security" | tail -5; fail "systemd-analyze security: exposure above 2.5"; }
step "$(echo "$security" | tail -1)"
passed=$((passed + 1))

step "3. Prometheus rules, dashboard and metrics"
"$promtool" check rules config/deploy/prometheus/alerts.yaml || fail "promtool check rules"
(cd config/deploy/prometheus && "$promtool" test rules alerts_test.yaml) || fail "promtool test rules"
out=$(CITYHUB_PROMTOOL="$promtool" "$GO" test -count=1 -run '^TestDashboardAndAlertsNameExportedMetrics$' -v ./config/deploy/ 2>&1) || { echo "$out"; fail "TestDashboardAndAlertsNameExportedMetrics"; }
grep -q -- '--- PASS: TestDashboardAndAlertsNameExportedMetrics' <<<"$out" || { echo "$out"; fail "the metrics test did not run"; }
grep -q 'promtool check metrics skipped' <<<"$out" && fail "promtool check metrics did not run"
passed=$((passed + 1))
echo "deploy-check: $passed passed, 0 failed"
