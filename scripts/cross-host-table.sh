#!/usr/bin/env bash
# The README's "crossing the host boundary" table: the same pingpong on one
# host (best shmchan, unix-stream, tcp and zenoh over loopback) and across a
# veth pair between two network namespaces (tcp, zenoh-tcp under `ipclab
# serve`), 64 B, 4 KiB and 1 MiB. Needs root and iproute2; makes the
# namespaces ipclab-tbl-s and ipclab-tbl-c with addresses 198.18.0.1/30 and
# 198.18.0.2/30 (RFC 2544's benchmarking range) and removes them on exit.
#
#   scripts/cross-host-table.sh OUT_DIR [extra ipclab run flags...]
set -euo pipefail
out=${1:?usage: scripts/cross-host-table.sh OUT_DIR [flags...]}
shift
mkdir -p "$out"
cd "$(dirname "$0")/.."
cargo build --release -q
bin=$PWD/target/release/ipclab
s=ipclab-tbl-s c=ipclab-tbl-c
cleanup() {
    if [ -n "${serve:-}" ]; then
        kill "$serve" 2>/dev/null || true
        wait "$serve" 2>/dev/null || true
    fi
    ip netns del "$s" 2>/dev/null || true
    ip netns del "$c" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$s"
ip netns add "$c"
ip link add tbl-s netns "$s" type veth peer name tbl-c netns "$c"
ip -n "$s" addr add 198.18.0.1/30 dev tbl-s
ip -n "$c" addr add 198.18.0.2/30 dev tbl-c
for ns in "$s" "$c"; do ip -n "$ns" link set lo up; done
ip -n "$s" link set tbl-s up
ip -n "$c" link set tbl-c up

common=(-s 64,4K,1M -p pingpong --repeat 3 --duration 1s --warmup 200ms "$@")
"$bin" run -m shmchan-spin,shmchan-block,shmchan-adaptive,unix-stream,tcp,zenoh,zenoh-tcp \
    --no-limits "${common[@]}" --json "$out/local.json" > "$out/local.txt"
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
ip netns exec "$s" "$bin" serve --listen 198.18.0.1:7600 --token "$token" --cpu 1 \
    > "$out/serve.out" 2> "$out/serve.log" &
serve=$!
for _ in $(seq 50); do grep -q listening "$out/serve.out" 2>/dev/null && break; sleep 0.1; done
ip netns exec "$c" "$bin" run --remote 198.18.0.1:7600 --token "$token" -m tcp,zenoh-tcp \
    "${common[@]}" --json "$out/veth.json" > "$out/veth.txt"
echo "wrote $out/local.json $out/veth.json"
