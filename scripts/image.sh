#!/usr/bin/env bash
# Builds cityhub's container image without a container engine (no Docker
# daemon, no root needed): static binaries (cityhubd, cityhubctl), a root
# filesystem laid out here, one reproducible tar layer (GNU tar, owners set
# numerically, times from the commit), packed and configured by umoci
# (Debian package umoci) as an OCI image.
#
#   scripts/image.sh            # make image
#
# Output in bin/image/:
#   oci/                     OCI image layout, tags <version> and latest
#   cityhub-<version>.tar    the same as an OCI archive:
#                              podman load -i bin/image/cityhub-<version>.tar
#                              skopeo copy oci-archive:bin/image/cityhub-<version>.tar docker-daemon:cityhub:<version>
#   version                  the image's tag
#
# The image: no shell, no package manager; /usr/local/bin/cityhubd (the
# entrypoint, run as cityhub, uid 65532, never root) and cityhubctl;
# /var/lib/cityhub (the data volume, owned by cityhub, the working
# directory); /etc/cityhub for the configuration (default command:
# --config /etc/cityhub/cityhubd.yaml); the system's CA bundle when this
# machine has one (OIDC providers over TLS); time zones are in the binary.
# config/deploy/Dockerfile builds the same with Docker.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/bin/image"
GO=${GO:-go}
UID_CITYHUB=65532

command -v umoci >/dev/null 2>&1 || {
  echo "image: umoci is missing (Debian: apt-get install umoci)" >&2
  exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc/cityhub" "$root/etc/ssl/certs" "$root/var/lib/cityhub" "$root/tmp"

echo "image: building cityhubd and cityhubctl (static, CGO off)"
(cd "$repo" && CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=auto -ldflags="-s -w" -o "$root/usr/local/bin/" ./cmd/cityhubd ./cmd/cityhubctl)

# The image's tag: the module version the binary reports (a pseudo-version
# from the commit in a git clone), made a valid OCI tag.
version=$("$root/usr/local/bin/cityhubd" --version | awk '{print $2}')
tag=$(printf '%s' "$version" | tr -c 'A-Za-z0-9_.-' '-' | cut -c1-128)
case $tag in "" | -*) tag="devel" ;; esac
revision=$("$root/usr/local/bin/cityhubd" --version | sed -n 's/.*(revision \([0-9a-f]*\).*/\1/p')

cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
cityhub:x:$UID_CITYHUB:$UID_CITYHUB:cityhub:/var/lib/cityhub:/sbin/nologin
EOF
cat >"$root/etc/group" <<EOF
root:x:0:
cityhub:x:$UID_CITYHUB:
EOF
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
else
  echo "image: no /etc/ssl/certs/ca-certificates.crt here (Debian: ca-certificates): the image has no CA bundle" >&2
fi
chmod 0755 "$root/usr/local/bin"/* "$root/etc/cityhub"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 0750 "$root/var/lib/cityhub"
chmod 1777 "$root/tmp"

# One layer, reproducible: sorted names, numeric owners, the commit's time.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
taropts=(--sort=name --mtime="@$epoch" --numeric-owner --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)
tar -C "$root" -cf "$work/layer.tar" "${taropts[@]}" --owner=0 --group=0 ./usr ./etc ./tmp
tar -C "$root" -rf "$work/layer.tar" "${taropts[@]}" --owner=0 --group=0 --no-recursion ./var ./var/lib
tar -C "$root" -rf "$work/layer.tar" "${taropts[@]}" --owner=$UID_CITYHUB --group=$UID_CITYHUB ./var/lib/cityhub

rm -rf "$out"
mkdir -p "$out"
oci="$out/oci"
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
umoci init --layout "$oci"
umoci new --image "$oci:$tag"
umoci raw add-layer --image "$oci:$tag" --history.created "$created" --history.created_by "scripts/image.sh" "$work/layer.tar"
umoci config --image "$oci:$tag" --created "$created" --history.created "$created" --history.created_by "scripts/image.sh" \
  --author "cityhub" --os linux --architecture "$("$GO" env GOARCH)" \
  --config.user "$UID_CITYHUB:$UID_CITYHUB" \
  --config.entrypoint /usr/local/bin/cityhubd \
  --config.cmd --config --config.cmd /etc/cityhub/cityhubd.yaml \
  --config.workingdir /var/lib/cityhub \
  --config.volume /var/lib/cityhub \
  --config.env PATH=/usr/local/bin \
  --config.exposedports 7001/tcp --config.exposedports 7101/tcp --config.exposedports 7201/tcp \
  --config.exposedports 7301/tcp --config.exposedports 7401/tcp \
  --config.stopsignal SIGTERM \
  --config.label "org.opencontainers.image.title=cityhub" \
  --config.label "org.opencontainers.image.description=cityhub tier node (数字城管)" \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$revision" \
  --manifest.annotation "org.opencontainers.image.version=$version"
umoci tag --image "$oci:$tag" latest
umoci gc --layout "$oci"
tar -C "$oci" -cf "$out/cityhub-$tag.tar" --sort=name --mtime="@$epoch" --numeric-owner --owner=0 --group=0 .
echo "$tag" >"$out/version"
size=$(du -k "$out/cityhub-$tag.tar" | cut -f1)
echo "image: cityhub:$tag (also latest) in $oci; OCI archive $out/cityhub-$tag.tar (${size} KiB)"
