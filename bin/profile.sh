#!/usr/bin/env bash
# Profiles a saturated one-process cluster: server -sim with -cpuprofile and -memprofile, 4 client
# processes (their defaults: 16 requests of 200 transactions in flight each) for SECS seconds; then
# prints the clients' merged result and the top entries of the CPU and heap profiles, and stops
# everything it started, also on failure or Ctrl-C.
#   ./profile.sh [algorithm] [seconds] [server flags...]     what `make profile` runs
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BIN_DIR"

alg=${1:-s-hs}
secs=${2:-20}
shift 2 2>/dev/null || shift $#
command -v go >/dev/null || die "go is needed to read the profiles (go tool pprof)"
export LOG_DIR=${LOG_DIR:-$BIN_DIR/logs/profile-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$LOG_DIR"
LOG_DIR=$(cd "$LOG_DIR" && pwd)
stopped=0
cleanup() { [[ $stopped == 1 ]] || ./stop.sh >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== server -sim $alg, profiled (logs and profiles in $LOG_DIR)"
started=$(./simulation.sh "$alg" -cpuprofile "$LOG_DIR/cpu.pprof" -memprofile "$LOG_DIR/heap.pprof" "$@")
echo "${started%%$'\n'*}"
echo "== 4 client processes for ${secs} s"
if ! ./runClient.sh --wait 4 -duration "$secs" >"$LOG_DIR/clients.out" 2>&1; then
	cat "$LOG_DIR/clients.out" >&2
	die "a client failed or committed nothing (its output is above)"
fi
./client -out "$LOG_DIR/clients.json" -merge "$LOG_DIR"/client.*.json | grep -E 'throughput:|latency \(ms\):|errors:'
./stop.sh >/dev/null
stopped=1
[[ -s "$LOG_DIR/cpu.pprof" && -s "$LOG_DIR/heap.pprof" ]] || die "the server wrote no profile (see $LOG_DIR/server.out)"
echo
echo "== CPU: the 25 functions with the most time, themselves and with what they call (go tool pprof -top -cum)"
go tool pprof -top -cum -nodecount 25 ./server "$LOG_DIR/cpu.pprof" 2>/dev/null | sed -n '/flat%/,$p'
echo
echo "== heap in use when the server stopped: the 15 largest (go tool pprof -top -sample_index=inuse_space)"
go tool pprof -top -sample_index=inuse_space -nodecount 15 ./server "$LOG_DIR/heap.pprof" 2>/dev/null | sed -n '/flat%/,$p'
echo
echo "go tool pprof -http=:8080 $BIN_DIR/server $LOG_DIR/cpu.pprof   browses the CPU profile"
