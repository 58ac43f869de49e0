#!/usr/bin/env bash
# Starts one server process per line of ips.txt on this machine (server -id i over authenticated
# TCP), in the background, and records their PIDs in server.pid.
#   ./run.sh [algorithm] [server flags]
#     algorithm: hotstuff (default), streamlet, smp-hs, s-hs, s-sl, s-hs-g; server flags (e.g.
#     -set bandwidth=100 -set delay=50) go to every server
# Keys: keys/ (created by server -keygen on first use, and again when ips.txt changes size).
# Voting state: data/ (cleared at every start: a fresh cluster starts at view 1).
# Logs: server.<pid>.log and server.<i>.out in LOG_DIR (default: this directory). Stop with ./stop.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIN_DIR"

alg=${1:-hotstuff}
shift || true
log_dir=${LOG_DIR:-.}
if running=$(live_pids "$SERVER_PID") && [[ -n "$running" ]]; then
	die "servers are already running (pids $(echo $running)); ./stop.sh stops them"
fi
build

mapfile -t hosts < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' ips.txt | grep -v '^$' || true)
n=${#hosts[@]}
((n > 0)) || die "ips.txt lists no hosts"
for i in "${!hosts[@]}"; do
	case "${hosts[$i]}" in
	127.* | localhost | ::1) ;;
	*) die "ips.txt line $((i + 1)) is ${hosts[$i]}: run.sh starts every node on this machine, so every host must be a loopback address (deploy/ runs across hosts)" ;;
	esac
done

# Keys: reuse those of an ips.txt of the same size, else make new ones.
if [[ ! -f keys/pubkeys.txt ]] || [[ $(grep -c '^[0-9]' keys/pubkeys.txt) != "$n" ]] || [[ ! -f keys/node$n.key ]]; then
	rm -f keys/pubkeys.txt keys/node*.key
	./server -keygen -ips ips.txt -keys keys >/dev/null || die "key generation failed"
fi
rm -f data/vote.*
mkdir -p "$log_dir" data

: >"$SERVER_PID"
started=()
fail() {
	local p
	for p in "${started[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${started[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -f "$SERVER_PID"
	die "$*"
}
for ((i = 1; i <= n; i++)); do
	./server -id "$i" -algorithm "$alg" -config config.json -ips ips.txt -keys keys -data_dir data \
		-log_dir "$log_dir" -log_level "${LOG_LEVEL:-info}" "$@" >"$log_dir/server.$i.out" 2>&1 &
	started+=($!)
	echo "$!" >>"$SERVER_PID"
done
for ((t = 0; t < 150; t++)); do
	ready=0
	for ((i = 1; i <= n; i++)); do
		if grep -q '^stratus:' "$log_dir/server.$i.out" 2>/dev/null; then
			ready=$((ready + 1))
		elif ! alive "${started[$((i - 1))]}"; then
			cat "$log_dir/server.$i.out" >&2
			fail "node $i exited during start-up (see $log_dir/server.$i.out)"
		fi
	done
	if ((ready == n)); then
		for ((i = 1; i <= n; i++)); do head -n 1 "$log_dir/server.$i.out"; done
		echo "$n servers running (pids ${started[*]}); ./runClient.sh 4 adds load, ./stop.sh stops them"
		exit 0
	fi
	sleep 0.1
done
fail "not every node reported ready within 15 s (see $log_dir/server.<i>.out)"
