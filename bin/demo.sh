#!/usr/bin/env bash
# The quick start: builds, starts a 4-replica cluster in one process, runs 4 client processes for
# about 20 s, prints the clients' merged summary and each replica's throughput and latency, and
# stops everything it started, also on failure or Ctrl-C.
#   ./demo.sh [algorithm] [seconds]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIN_DIR"

alg=${1:-s-hs}
secs=${2:-20}
export LOG_DIR=${LOG_DIR:-$BIN_DIR/logs/demo-$(date +%Y%m%d-%H%M%S)}
stopped=0
cleanup() { [[ $stopped == 1 ]] || ./stop.sh >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting the replicas of ips.txt running $alg (logs in $LOG_DIR)"
./simulation.sh "$alg"
ready=$(grep -m1 '^stratus:' "$LOG_DIR/server.out" || true)
dash=${ready#*HTTP }
dash=${dash%%..*} # the first replica's HTTP address
[[ $dash == "$ready" || -z $dash ]] && dash=127.0.0.1:8070 # node 1's default HTTP port
dash=${dash/0.0.0.0:/127.0.0.1:}
echo
echo "dashboard: http://$dash/   (live charts of every replica; Prometheus metrics at /metrics)"
echo
echo "== running 4 client processes for ${secs} s (progress lines: $LOG_DIR/client.<i>.out)"
if ! ./runClient.sh --wait 4 -duration "$secs" >"$LOG_DIR/clients.out" 2>&1; then
	cat "$LOG_DIR/clients.out" >&2
	die "a client failed or committed nothing (its output is above; logs in $LOG_DIR)"
fi
echo
echo "== the clients, each over its whole run and together (end-to-end latency: submit -> commit notice)"
./client -out "$LOG_DIR/clients.json" -merge "$LOG_DIR"/client.*.json
echo
echo "== replicas (server-side latency: receipt from the client -> delivery at that replica)"
./stop.sh >/dev/null
stopped=1
grep '^node ' "$LOG_DIR/server.out"
echo
echo "Logs, summaries and statistics are in $LOG_DIR"
