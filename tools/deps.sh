#!/usr/bin/env bash
# Installs what building and testing airlock needs on Debian 12: apt packages, then the
# pinned npm test dependencies (tests/interop/package-lock.json). Idempotent: packages
# already present are not fetched again.
set -eu
cd "$(dirname "$0")/.."

APT_PACKAGES=(
	build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
	libssl-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev libpq-dev
	libseccomp-dev libnghttp2-dev node-llhttp libyaml-dev libcmocka-dev
	curl jq openssl sqlite3 ripgrep bubblewrap iproute2 nftables procps python3
	wrk openssh-server openssh-client
	qemu-system-x86 postgresql chromium python3-prometheus-client python3-cryptography
)

SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from another source than Debian (its own npm then conflicts with
# Debian's): only ask apt for it when the commands are missing.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
	echo "deps: installing ${missing[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >&2
fi

if [ "${1:-}" != "--no-npm" ]; then
	# npm's own node_modules/.package-lock.json never equals the lock byte for byte, so
	# a stamp of the lock we installed from says whether node_modules is current.
	stamp=tests/interop/node_modules/.airlock-lock.sha256
	want=$(sha256sum tests/interop/package-lock.json | cut -d' ' -f1)
	if [ ! -d tests/interop/node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
		echo "deps: npm ci (tests/interop)" >&2
		(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error >&2)
		echo "$want" >"$stamp"
	fi
fi
