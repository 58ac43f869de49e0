#!/usr/bin/env bash
# Starts one server process per line of ips.txt on this machine (server -id i over authenticated
# TCP), in the background, and records their PIDs in server.pid.
#   ./run.sh [--keep] [algorithm] [server flags]
#     algorithm: hotstuff (default), streamlet, smp-hs, s-hs, s-sl, s-hs-g; server flags (e.g.
#     -set bandwidth=100 -set delay=50) go to every server
# A start makes fresh keys in keys/ and clears the replicas' stores in data/: a fresh cluster
# starts at view 1, and a replica left over from an earlier run can neither join nor vote twice.
# --keep restarts a stopped cluster from its stores instead (same keys, same data/): every
# committed write is still there and heights and chain digests continue. Start it with the same
# algorithm and flags as before.
# Logs: server.<pid>.log and server.<i>.out in LOG_DIR (default: this directory). Stop with ./stop.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIN_DIR"

keep=0
if [[ "${1:-}" == --keep ]]; then
	keep=1
	shift
fi
alg=${1:-hotstuff}
shift || true
for a; do
	case "$a" in
	-data_dir | -data_dir=* | --data_dir | --data_dir=* | -keys | -keys=* | --keys | --keys=*)
		die "run.sh keeps keys in keys/ and the replicas' stores in data/ (cleared at every start without --keep); $a would move them out of its reach" ;;
	esac
done
config_sets "$@" # the -set flags also reach key generation: -set signer=bls12-381 makes BLS keys
log_dir=${LOG_DIR:-.}
if running=$(live_pids "$SERVER_PID") && [[ -n "$running" ]]; then
	die "servers are already running (pids $(echo $running)); ./stop.sh stops them"
fi
build

[[ -f ips.txt ]] || die "no ips.txt in $BIN_DIR: it lists the replicas, one loopback address per line"
mapfile -t hosts < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' ips.txt | grep -v '^$' || true)
n=${#hosts[@]}
((n > 0)) || die "ips.txt lists no hosts"
for i in "${!hosts[@]}"; do
	case "${hosts[$i]}" in
	127.* | localhost | ::1) ;;
	*) die "ips.txt line $((i + 1)) is ${hosts[$i]}: run.sh starts every node on this machine, so every host must be a loopback address (deploy/ runs across hosts)" ;;
	esac
done

if ((keep)); then
	[[ -f keys/pubkeys.txt ]] || die "--keep: no keys in keys/ (start once without --keep)"
	for ((i = 1; i <= n; i++)); do
		[[ -f "keys/node$i.key" ]] || die "--keep: keys/node$i.key is missing: ips.txt lists $n nodes, the kept cluster had fewer"
		[[ -d "data/store.$i" ]] || echo "run.sh: --keep: node $i has no store in data/store.$i; it starts empty and catches up" >&2
	done
else
	rm -rf keys/pubkeys.txt keys/node*.key data/vote.* data/store.*
	./server -keygen -config config.json -ips ips.txt -keys keys ${SETS[@]+"${SETS[@]}"} >/dev/null || die "server -keygen refused config.json or ips.txt (the reason is above); nothing was started"
fi
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
