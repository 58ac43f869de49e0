#!/usr/bin/env bash
# Starts K load-generating client processes against the replicas of config.json/ips.txt.
#   ./runClient.sh [--wait] K [client flags...]    e.g. ./runClient.sh 4 -duration 30 -rate 20000
# Each client writes client.<pid>.log and its summary client.<pid>.json in LOG_DIR (default: here).
# Without --wait the clients run in the background (./closeClient.sh stops them early); with --wait
# the script waits for them and prints every summary.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIN_DIR"

wait_for=0
if [[ "${1:-}" == "--wait" ]]; then wait_for=1; shift; fi
k=${1:-}
[[ "$k" =~ ^[1-9][0-9]*$ ]] || die "usage: ./runClient.sh [--wait] K [client flags...]  (K = number of client processes)"
shift
if running=$(live_pids "$CLIENTS_PID") && [[ -n "$running" ]]; then
	die "clients are already running (pids $(echo $running)); ./closeClient.sh stops them"
fi
build
log_dir=${LOG_DIR:-.}
mkdir -p "$log_dir"
: >"$CLIENTS_PID"
pids=()
for ((i = 1; i <= k; i++)); do
	./client -config config.json -ips ips.txt -log_dir "$log_dir" "$@" >"$log_dir/client.$i.out" 2>&1 &
	pids+=($!)
	echo "$!" >>"$CLIENTS_PID"
done
echo "started $k clients: ${pids[*]} (summaries: $log_dir/client.<pid>.json)"
[[ $wait_for == 1 ]] || exit 0

status=0
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || status=1
	echo "--- client $((i + 1)) (pid ${pids[$i]})"
	tail -n 12 "$log_dir/client.$((i + 1)).out"
done
rm -f "$CLIENTS_PID"
exit $status
