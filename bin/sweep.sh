#!/usr/bin/env bash
# Runs every protocol at every cluster size under the same client load and tabulates the results.
#   ./sweep.sh [-p "hotstuff s-hs"] [-n "4 16"] [-c CLIENTS] [-t SECONDS] [-m sim|tcp] [-s "server flags"] [-o DIR] [-- client flags]
# Each run starts its own replicas (config.json of this directory, an ips file of N loopback hosts)
# in one process (-m sim, the default) or one process per replica over TCP (-m tcp), with the
# server flags of -s (e.g. -s "-set bandwidth=100 -set delay=50"), runs CLIENTS client processes,
# stops everything it started, and keeps in
# DIR/<protocol>-n<N>/ the server log, client summaries, the merged summary and each replica's
# final /query JSON. DIR/summary.csv and the printed table hold committed throughput and client
# latency (merged over the clients, exact percentiles).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIN_DIR"

protocols="hotstuff streamlet smp-hs s-hs s-sl s-hs-g"
sizes="4"
clients=4
secs=20
mode=sim
server_flags=""
out="$BIN_DIR/results/sweep-$(date +%Y%m%d-%H%M%S)"
while getopts "p:n:c:t:m:s:o:h" opt; do
	case $opt in
	p) protocols=$OPTARG ;;
	n) sizes=$OPTARG ;;
	c) clients=$OPTARG ;;
	t) secs=$OPTARG ;;
	m) mode=$OPTARG ;;
	s) server_flags=$OPTARG ;;
	o) out=$OPTARG ;;
	*) sed -n '2,10p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift
[[ "$clients" =~ ^[1-9][0-9]*$ && "$secs" =~ ^[1-9][0-9]*$ ]] || die "-c and -t take positive integers"
[[ "$mode" == sim || "$mode" == tcp ]] || die "-m takes sim or tcp"
read -r -a sflags <<<"$server_flags"
if running=$(live_pids "$SERVER_PID") && [[ -n "$running" ]]; then
	die "servers started by simulation.sh or run.sh are running (pids $(echo $running)); ./stop.sh first, the ports are shared"
fi
fresh_dir "$out"
build
mkdir -p "$out"

pids=()
trap cleanup_started EXIT
trap 'exit 130' INT TERM

echo "protocol,n,clients,seconds,committed_tx,throughput_tps,p50_ms,p99_ms,errors" >"$out/summary.csv"
printf '%-10s %4s %14s %10s %10s %7s\n' protocol N "tx/s" "p50 ms" "p99 ms" errors
for n in $sizes; do
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "-n: $n is not a number of replicas"
	for p in $protocols; do
		run="$out/$p-n$n"
		mkdir -p "$run"
		cp config.json "$run/config.json"
		for ((i = 0; i < n; i++)); do echo 127.0.0.1; done >"$run/ips.txt"
		if [[ $mode == tcp ]]; then
			start_tcp "$run" "$n" -algorithm "$p" -config "$run/config.json" -ips "$run/ips.txt" ${sflags[@]+"${sflags[@]}"}
		else
			start_sim "$run" -algorithm "$p" -config "$run/config.json" -ips "$run/ips.txt" ${sflags[@]+"${sflags[@]}"}
		fi
		run_clients "$run" "$clients" -config "$run/config.json" -ips "$run/ips.txt" -duration "$secs" "$@"
		stop_sim "$run" "$n"
		read -r tx tps p50 p99 errs < <(merge_clients "$run")
		echo "$p,$n,$clients,$secs,$tx,$tps,$p50,$p99,$errs" >>"$out/summary.csv"
		printf '%-10s %4s %14s %10s %10s %7s\n' "$p" "$n" "$tps" "$p50" "$p99" "$errs"
	done
done
echo "results in $out (summary.csv)"
