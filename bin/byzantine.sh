#!/usr/bin/env bash
# Runs one protocol with K Byzantine replicas of each strategy (and once fault-free) under the same
# client load, and tabulates committed throughput relative to the fault-free run.
#   ./byzantine.sh [-p s-hs] [-n 7] [-b 2] [-s "silence fork ..."] [-c CLIENTS] [-t SECONDS] [-o DIR]
#                  [-e key=value ...] [-- client flags]
# Replicas 1..K follow the strategy; the clients send to the others only. crash stops the K
# replicas a third into the run and restarts them a third later; slow adds 100 ms to their
# messages. -e sets a config key for every run (e.g. -e timeout=300).
# DIR/<strategy>/ keeps the server log, client summaries and each replica's final /query JSON;
# DIR/summary.csv and the printed table hold committed tx/s (merged over the clients), its ratio
# to the fault-free run, client latency, and whether the honest replicas' chain digests agree.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIN_DIR"

protocol=s-hs
n=7
byz=2
strategies="silence crash slow fork equivocate equivocate-flood doublevote missing badproof censor flood badsig"
clients=4
secs=20
out="$BIN_DIR/results/byzantine-$(date +%Y%m%d-%H%M%S)"
extra=()
while getopts "p:n:b:s:c:t:o:e:h" opt; do
	case $opt in
	p) protocol=$OPTARG ;;
	n) n=$OPTARG ;;
	b) byz=$OPTARG ;;
	s) strategies=$OPTARG ;;
	c) clients=$OPTARG ;;
	t) secs=$OPTARG ;;
	o) out=$OPTARG ;;
	e) extra+=(-set "$OPTARG") ;;
	*) sed -n '2,11p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift
for v in "$n" "$clients" "$secs"; do [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "-n, -c and -t take positive integers"; done
[[ "$byz" =~ ^[0-9]+$ && $byz -lt $n ]] || die "-b takes a number of Byzantine replicas below N"
if running=$(live_pids "$SERVER_PID") && [[ -n "$running" ]]; then
	die "a server started by simulation.sh is running (pid $running); ./stop.sh first, the ports are shared"
fi
fresh_dir "$out"
build
mkdir -p "$out"
targets=$(seq -s, $((byz + 1)) "$n")

pids=()
trap cleanup_started EXIT
trap 'exit 130' INT TERM

echo "strategy,n,byzantine,committed_tx,throughput_tps,relative,p50_ms,p99_ms,errors,digests" >"$out/summary.csv"
printf '%-17s %12s %9s %9s %9s %7s %s\n' strategy "tx/s" relative "p50 ms" "p99 ms" errors digests
base=""
for s in none $strategies; do
	run="$out/$s"
	mkdir -p "$run"
	for ((i = 0; i < n; i++)); do echo 127.0.0.1; done >"$run/ips.txt"
	sets=(-set "slow=100" -set "crash=$((secs * 1000 / 3))" -set "restart=$((secs * 1000 / 3))" "${extra[@]}")
	[[ $s != none ]] && sets+=(-set "byzNo=$byz" -set "strategy=$s")
	start_sim "$run" -algorithm "$protocol" -config config.json -ips "$run/ips.txt" "${sets[@]}"
	run_clients "$run" "$clients" -config config.json -ips "$run/ips.txt" -duration "$secs" -targets "$targets" "$@"
	stop_sim "$run" "$n"
	read -r tx tps p50 p99 errs < <(merge_clients "$run")
	[[ -z $base ]] && base=$tps
	rel=$(awk -v a="$tps" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
	# Honest replicas at the same height must report the same chain digest.
	digests=$(for ((i = byz + 1; i <= n; i++)); do
		grep -o '"committed_height":[0-9]*,"chain_digest":"[0-9a-f]*"' "$run/node$i.json" 2>/dev/null || true
	done | sort | uniq | awk -F'[:,"]+' '{ if (seen[$3] && seen[$3] != $5) bad = 1; seen[$3] = $5 } END { print bad ? "DISAGREE" : "agree" }')
	echo "$s,$n,$([[ $s == none ]] && echo 0 || echo "$byz"),$tx,$tps,$rel,$p50,$p99,$errs,$digests" >>"$out/summary.csv"
	printf '%-17s %12s %9s %9s %9s %7s %s\n' "$s" "$tps" "$rel" "$p50" "$p99" "$errs" "$digests"
done
echo "results in $out (summary.csv)"
