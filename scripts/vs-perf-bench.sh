#!/usr/bin/env bash
# Checks ipclab's pipe round trip against `perf bench sched pipe`, a tool
# nobody here wrote, on the same placement, one right after the other.
#
#   scripts/vs-perf-bench.sh [ROUNDS]
#
# perf pins nothing itself. same-core: `taskset -c 0` puts both of its
# processes on CPU 0. cross-core: perf starts on CPUs 0,1, and as soon as it
# has forked its second process, this script pins perf to CPU 0 and the
# child to CPU 1 (left alone, the scheduler's wake-affine logic often puts
# both on one CPU). unpinned: `taskset -c 0,1` and nothing more. perf
# reports the mean time per round trip of a 4-byte message; ipclab's mean
# and median of a 64-byte one are shown beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
command -v perf >/dev/null || { echo "perf is not installed (Debian: linux-perf)"; exit 1; }
cargo build --release --quiet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mean() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["rows"][0]; print("%.2f" % (r["rtt_ns"]["mean"]/1000), "%.2f" % (r["rtt_ns"]["p50"]/1000))' "$1"; }
printf '%-12s %-22s %12s %14s %14s\n' placement "perf (taskset)" "perf µs/op" "ipclab mean" "ipclab p50"
for i in $(seq "$rounds"); do
  for p in same-core:0 cross-core:0,1 unpinned:0,1; do
    placement=${p%%:*} cpus=${p#*:}
    taskset -c "$cpus" perf bench sched pipe -l 200000 >"$tmp/perf" 2>&1 &
    perf_pid=$!
    if [ "$placement" = cross-core ]; then
      for _ in $(seq 1000); do
        kid=$(pgrep -P "$perf_pid" | head -n 1) && [ -n "$kid" ] && break
        sleep 0.002
      done
      taskset -pc 0 "$perf_pid" >/dev/null && taskset -pc 1 "$kid" >/dev/null
    fi
    wait "$perf_pid"
    perf_us=$(awk '/usecs\/op/ {print $1}' "$tmp/perf")
    taskset -c "$cpus" ./target/release/ipclab run -m pipe -s 64 -p pingpong --no-limits --placement "$placement" \
      --duration 1s --json "$tmp/r.json" >/dev/null 2>&1
    read -r m p50 < <(mean "$tmp/r.json")
    label="taskset -c $cpus"; [ "$placement" = cross-core ] && label="pinned 0 and 1"
    printf '%-12s %-22s %12s %11s µs %11s µs\n' "$placement" "$label" "$perf_us" "$m" "$p50"
  done
done
