#!/usr/bin/env bash
# Starts one server process per line of ips.txt on this machine (server -id i over authenticated
# TCP), in the background, and records their PIDs in server.pid.
#   ./run.sh [algorithm] [server flags]
#     algorithm: hotstuff (default), streamlet, smp-hs, s-hs, s-sl, s-hs-g; server flags (e.g.
#     -set bandwidth=100 -set delay=50) go to every server
# Every start makes fresh keys in keys/ and clears the voting state in data/: a fresh cluster
# starts at view 1, and a replica left over from an earlier run can neither join nor vote twice.
# Logs: server.<pid>.log and server.<i>.out in LOG_DIR (default: this directory). Stop with ./stop.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIN_DIR"

alg=${1:-hotstuff}
shift || true
for a; do
	case "$a" in
	-data_dir | -data_dir=* | --data_dir | --data_dir=* | -keys | -keys=* | --keys | --keys=*)
		die "run.sh keeps keys in keys/ and voting state in data/ (cleared at every start); $a would move them out of its reach" ;;
	esac
done
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

rm -f keys/pubkeys.txt keys/node*.key data/vote.*
./server -keygen -config config.json -ips ips.txt -keys keys >/dev/null || die "key generation failed"
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
