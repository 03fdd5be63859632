#!/usr/bin/env bash
# deps.sh - install what pdsync needs to build and test, from Debian's
# packages, when it is missing. Uses sudo when not root. Safe to re-run.
set -euo pipefail

packages=(build-essential cmake pkg-config libuv1-dev liblmdb-dev
          libmsgpack-dev libsodium-dev libssl-dev libinih-dev clang-format)
# Extra packages for a caller (e.g. the benchmark) may be passed as args.
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "deps.sh: missing packages ${missing[*]} and no sudo: install them as root" >&2
    exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
