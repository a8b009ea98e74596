#!/usr/bin/env bash
# Installs PgBouncer 1.21 or later as /usr/local/bin/pgbouncer, unless one is
# there already. Transaction pooling carries sqlx's named prepared statements
# only from 1.21 on (`max_prepared_statements`); Debian 12 ships 1.18, so this
# builds the source package of Debian 13 (trixie) from the machine's own
# Debian mirror, without adding it to the system's package sources.
set -euo pipefail

wanted=1.21
installed_version() {
    "$1" --version 2>/dev/null | awk 'NR == 1 { print $2 }'
}
new_enough() {
    local version
    version=$(installed_version "$1")
    [ -n "$version" ] && [ "$(printf '%s\n%s\n' "$wanted" "$version" | sort -V | head -1)" = "$wanted" ]
}

if [ -x /usr/local/bin/pgbouncer ] && new_enough /usr/local/bin/pgbouncer; then
    echo "pgbouncer $(installed_version /usr/local/bin/pgbouncer) is installed"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
packages=(build-essential pkg-config libevent-dev)
apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "${packages[@]}" >/dev/null; }

# The mirror the machine already uses.
mirror=$(grep -hoP '^URIs:\s*\K\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
if [ -z "$mirror" ]; then
    mirror=$(grep -hoP '^deb\s+(\[[^]]*\]\s+)?\K\S+' /etc/apt/sources.list | head -1)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt's download user writes there
mkdir -p "$work/lists/partial"
echo "deb-src $mirror trixie main" >"$work/sources.list"
apt_options=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/lists"
)
apt-get update -qq "${apt_options[@]}"
(cd "$work" && apt-get source --download-only -qq "${apt_options[@]}" pgbouncer)
tar -xzf "$work"/pgbouncer_*.orig.tar.gz -C "$work"
cd "$work"/pgbouncer-*/
./configure --prefix=/usr/local --without-cares --without-openssl >/dev/null
make -s -j"$(nproc)" >/dev/null
make -s install >/dev/null
echo "installed pgbouncer $(installed_version /usr/local/bin/pgbouncer)"
