#!/usr/bin/env bash
# Starts every replica listed in ips.txt in one process (server -sim), in the background: a real
# cluster in real time, over in-process channels (the name is the original prototype's; the
# virtual-time simulator is server -virtual).
#   ./simulation.sh [algorithm] [server flags]
#     algorithm: hotstuff (default), streamlet, smp-hs, s-hs, s-sl, s-hs-g; server flags such as
#     -set byzNo=1 -set strategy=equivocate or -data_dir data go to server -sim
# Logs: server.<pid>.log in LOG_DIR (default: this directory). Stop with ./stop.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIN_DIR"

alg=${1:-hotstuff}
shift || true
log_dir=${LOG_DIR:-.}
if running=$(live_pids "$SERVER_PID") && [[ -n "$running" ]]; then
	die "a server is already running (pid $running); ./stop.sh stops it"
fi
build
mkdir -p "$log_dir"
out="$log_dir/server.out"
./server -sim -algorithm "$alg" -config config.json -ips ips.txt -log_dir "$log_dir" \
	-log_level "${LOG_LEVEL:-info}" "$@" >"$out" 2>&1 &
pid=$!
echo "$pid" >"$SERVER_PID"
for ((i = 0; i < 100; i++)); do
	if grep -q '^stratus:' "$out" 2>/dev/null; then
		cat "$out"
		echo "server running (pid $pid); ./runClient.sh 4 adds load, ./stop.sh stops it"
		exit 0
	fi
	if ! alive "$pid"; then
		rm -f "$SERVER_PID"
		cat "$out" >&2
		die "the server exited during start-up"
	fi
	sleep 0.1
done
kill -TERM "$pid" 2>/dev/null || true
rm -f "$SERVER_PID"
die "the server did not report ready within 10 s (see $out)"
