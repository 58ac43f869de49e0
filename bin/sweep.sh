#!/usr/bin/env bash
# Runs every protocol at every cluster size under the same saturating client load and tabulates
# the results.
#   ./sweep.sh [-p "hotstuff s-hs"] [-n "4 16"] [-c CLIENTS] [-t SECONDS] [-m sim|tcp] [-s "server flags"] [-o DIR] [-- client flags]
# A thin wrapper over the experiment runner (stratus-exp): it writes DIR/sweep.json, a spec with
# closed-loop clients (each keeps its requests in flight, the config's benchmark settings unless
# the client flags say otherwise), config.json of this directory, no warm-up and no shaping beyond
# the config's and the server flags of -s (e.g. -s "-set bandwidth=100 -set delay=50"), and runs it
# on the sim backend (every replica in one server -sim process, the default) or tcp (a server -id
# process per replica over authenticated TCP, each with its store) on free loopback ports. The
# runner keeps DIR/sweep/ (rows.jsonl with every run's provenance, rows.csv, summary.*, and
# runs/<key>/ with each run's config, logs, client summaries and replicas' /query), and stops
# everything it started. DIR/summary.csv and the printed table hold committed throughput and
# client latency (merged over the clients, exact percentiles).
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
	*) sed -n '2,14p' "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift
[[ "$clients" =~ ^[1-9][0-9]*$ && "$secs" =~ ^[1-9][0-9]*$ ]] || die "-c and -t take positive integers"
[[ "$mode" == sim || "$mode" == tcp ]] || die "-m takes sim or tcp"
for n in $sizes; do
	[[ "$n" =~ ^[1-9][0-9]*$ ]] || die "-n: $n is not a number of replicas"
done
read -r -a sflags <<<"$server_flags"
fresh_dir "$out"
build_exp
mkdir -p "$out"
out=$(cd "$out" && pwd)

# json_list WORD...: the words as a JSON array of strings.
json_list() {
	local w sep="" s="["
	for w in "$@"; do
		w=${w//\\/\\\\}
		w=${w//\"/\\\"}
		s+="$sep\"$w\""
		sep=", "
	done
	echo "$s]"
}
read -r -a plist <<<"$protocols"
read -r -a nlist <<<"$sizes"
cat >"$out/sweep.json" <<SPEC
{
  "name": "sweep",
  "about": "bin/sweep.sh -m $mode: every protocol at every N under $clients closed-loop client processes for $secs s",
  "config": "$BIN_DIR/config.json",
  "protocols": $(json_list "${plist[@]}"),
  "n": [$(IFS=,; echo "${nlist[*]}")],
  "load": {"closed": true},
  "network": {"preset": "config"},
  "duration": "${secs}s",
  "warmup": "0s",
  "tcp": {"clients": $clients, "server_flags": $(json_list ${sflags[@]+"${sflags[@]}"}), "client_flags": $(json_list "$@")}
}
SPEC
./stratus-exp -backend "$mode" -bin "$BIN_DIR" -out "$out" -noplots "$out/sweep.json" || die "the runner failed (its output is above; rows in $out/sweep)"

# The rows, in the spec's order, as summary.csv and a table.
echo "protocol,n,clients,seconds,committed_tx,throughput_tps,p50_ms,p99_ms,errors" >"$out/summary.csv"
awk -F, -v clients="$clients" -v secs="$secs" '
	NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
	{ printf "%s,%s,%s,%s,%s,%.1f,%s,%s,%s\n", $col["protocol"], $col["n"], clients, secs, $col["committed_tx"],
		$col["throughput_ktps"] * 1000, $col["p50_ms"], $col["p99_ms"], $col["errors"] }' "$out/sweep/rows.csv" >>"$out/summary.csv"
printf '%-10s %4s %14s %10s %10s %7s\n' protocol N "tx/s" "p50 ms" "p99 ms" errors
tail -n +2 "$out/summary.csv" | awk -F, '{ printf "%-10s %4s %14s %10s %10s %7s\n", $1, $2, $6, $7, $8, $9 }'
echo "results in $out (summary.csv; every run's provenance in sweep/rows.jsonl)"
