#!/usr/bin/env bash
# The namespace tests (tests/netns.rs) need `ip` and `tc` from iproute2.
# Installs it where it is missing and this is a Debian-like system run as
# root; otherwise says why not (the tests then skip with one line).
set -euo pipefail
if command -v ip >/dev/null && command -v tc >/dev/null; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "iproute2 is missing and cannot be installed here (needs root and apt-get); the namespace tests will skip" >&2
    exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
