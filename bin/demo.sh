#!/usr/bin/env bash
# The quick start: builds, starts a 4-replica cluster in one process, runs 4 client processes for
# about 20 s, prints the clients' summaries and each replica's throughput and latency, and stops
# everything it started, also on failure or Ctrl-C.
#   ./demo.sh [algorithm] [seconds]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIN_DIR"

alg=${1:-hotstuff}
secs=${2:-20}
export LOG_DIR=${LOG_DIR:-$BIN_DIR/logs/demo-$(date +%Y%m%d-%H%M%S)}
cleanup() { ./stop.sh >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting 4 replicas of $alg (logs in $LOG_DIR)"
./simulation.sh "$alg"
echo "== running 4 clients for ${secs}s"
./runClient.sh --wait 4 -duration "$secs"
echo "== replicas"
n=$(grep -cv '^\s*\(#.*\)\?$' ips.txt)
for ((i = 1; i <= n; i++)); do
	host=$(grep -v '^\s*\(#.*\)\?$' ips.txt | sed -n "${i}p" | sed 's/#.*//; s/[[:space:]]//g')
	curl -fsS "http://$host:$((8069 + i))/query?format=json" |
		python3 -c 'import json,sys; s=json.load(sys.stdin); l=s["latency_ms"]; print("node %d: committed %d tx in %d blocks, view %d, %.0f tx/s (last 10 s), %.0f tx/s since start, latency p50 %.1f ms p99 %.1f ms" % (s["node"], s["committed_tx"], s["committed_blocks"], s["view"], s["throughput_tps"], s["throughput_total_tps"], l["p50"], l["p99"]))' ||
		echo "node $i: no answer"
done
echo "== totals over the clients"
python3 - "$LOG_DIR" <<'PY'
import glob, json, sys
runs = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/client.*.json"))]
if not runs:
    sys.exit("no client summaries found")
tx = sum(r["committed_tx"] for r in runs)
tps = sum(r["throughput_tps"] for r in runs)
errs = sum(r.get("errors_total", 0) for r in runs)
p50 = max(r["latency_ms"]["p50"] for r in runs)
p99 = max(r["latency_ms"]["p99"] for r in runs)
print(f"{len(runs)} clients: committed {tx} tx, {tps:.0f} tx/s, latency p50 <= {p50:.1f} ms, p99 <= {p99:.1f} ms (worst client), {errs} errors")
PY
