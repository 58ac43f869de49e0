# Shared helpers for the bin/ scripts. Sourced, not run.
# Every process the scripts start is recorded in a PID file; only those processes are ever stopped.

BIN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SERVER_PID="$BIN_DIR/server.pid"
CLIENTS_PID="$BIN_DIR/clients.pid"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# build compiles bin/server and bin/client from the repository when the sources are here; a
# bin/ directory copied elsewhere uses the binaries it holds.
build() {
	if [[ -f "$BIN_DIR/../go.mod" ]]; then
		command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
		(cd "$BIN_DIR/.." && go build -o bin/server ./server && go build -o bin/client ./client) ||
			die "build failed"
	fi
	[[ -x "$BIN_DIR/server" && -x "$BIN_DIR/client" ]] || die "bin/server and bin/client are missing; run make build"
}

# build_exp: build, and bin/stratus-exp (the experiment runner) for the scripts that use it.
build_exp() {
	build
	if [[ -f "$BIN_DIR/../go.mod" ]]; then
		(cd "$BIN_DIR/.." && go build -o bin/stratus-exp ./experiment/cmd/stratus-exp) || die "build failed"
	fi
	[[ -x "$BIN_DIR/stratus-exp" ]] || die "bin/stratus-exp is missing; run make build"
}

# alive PID: true when the process exists and is not a zombie.
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ -n "$st" && "$st" != Z* ]]
}

# live_pids FILE: the PIDs in FILE that still run.
live_pids() {
	[[ -f "$1" ]] || return 0
	local p
	while read -r p; do
		[[ "$p" =~ ^[0-9]+$ ]] && alive "$p" && echo "$p"
	done <"$1"
	return 0
}

# stop_pids FILE WHAT: SIGTERM the live PIDs of FILE, wait up to 10 s, SIGKILL what is left,
# then remove FILE.
stop_pids() {
	local file=$1 what=$2 pids p i
	pids=$(live_pids "$file")
	if [[ -z "$pids" ]]; then
		rm -f "$file"
		echo "no $what running"
		return 0
	fi
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	for ((i = 0; i < 100; i++)); do
		[[ -z "$(for p in $pids; do alive "$p" && echo "$p"; done)" ]] && break
		sleep 0.1
	done
	for p in $pids; do
		if alive "$p"; then
			echo "$what $p did not stop in 10 s; killing it" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	rm -f "$file"
	echo "stopped $what: $(echo $pids)"
}

# The sweep scripts: pids holds what they started, for their cleanup.

# start_sim RUN [server flags]: starts server -sim logging into RUN, waits for its ready line and
# records it in pids (SIM_PIDS).
start_sim() {
	local run=$1 i
	shift
	./server -sim -log_dir "$run" "$@" >"$run/server.out" 2>&1 &
	SIM_PIDS=($!)
	pids=("${SIM_PIDS[@]}")
	for ((i = 0; i < 100; i++)); do
		grep -q '^stratus:' "$run/server.out" 2>/dev/null && return 0
		alive "${SIM_PIDS[0]}" || { cat "$run/server.out" >&2; die "the server exited during start-up (see $run/server.out)"; }
		sleep 0.1
	done
	die "the server did not report ready within 10 s (see $run/server.out)"
}

# config_sets [server flags]: the -set flags among them, in SETS (for key generation, which must
# follow -set signer=...).
config_sets() {
	local prev="" a
	SETS=()
	for a; do
		case "$a" in
		-set=* | --set=*) SETS+=("$a") ;;
		esac
		if [[ "$prev" == -set || "$prev" == --set ]]; then SETS+=(-set "$a"); fi
		prev=$a
	done
}

# start_tcp RUN N [server flags]: starts N server -id processes (keys and stores in RUN),
# waits for their ready lines and records them in pids (SIM_PIDS).
start_tcp() {
	local run=$1 n=$2 i t ready
	shift 2
	rm -rf "$run/keys" "$run/data" # a run directory used before: a fresh cluster
	config_sets "$@"
	./server -keygen -config "$run/config.json" -ips "$run/ips.txt" -keys "$run/keys" ${SETS[@]+"${SETS[@]}"} >/dev/null || die "server -keygen refused $run/config.json or $run/ips.txt (the reason is above); nothing was started"
	SIM_PIDS=()
	for ((i = 1; i <= n; i++)); do
		./server -id "$i" -keys "$run/keys" -data_dir "$run/data" -log_dir "$run" "$@" >"$run/server.$i.out" 2>&1 &
		SIM_PIDS+=($!)
	done
	pids=("${SIM_PIDS[@]}")
	for ((t = 0; t < 300; t++)); do
		ready=0
		for ((i = 1; i <= n; i++)); do
			if grep -q '^stratus:' "$run/server.$i.out" 2>/dev/null; then
				ready=$((ready + 1))
			elif ! alive "${SIM_PIDS[$((i - 1))]}"; then
				cat "$run/server.$i.out" >&2
				die "node $i exited during start-up (see $run/server.$i.out)"
			fi
		done
		((ready == n)) && return 0
		sleep 0.1
	done
	die "not every node reported ready within 30 s (see $run/server.<i>.out)"
}

# run_clients RUN K [client flags]: runs K client processes logging into RUN and waits for them.
run_clients() {
	local run=$1 k=$2 i c cpids=()
	shift 2
	for ((i = 1; i <= k; i++)); do
		./client -log_dir "$run" "$@" >"$run/client.$i.out" 2>&1 &
		cpids+=($!)
		pids+=($!)
	done
	for c in "${cpids[@]}"; do wait "$c" || true; done
}

# stop_sim RUN N: saves each replica's /query JSON into RUN and stops the server(s) start_sim or
# start_tcp started.
stop_sim() {
	local run=$1 n=$2 i p
	for ((i = 1; i <= n; i++)); do
		curl -fsS "http://127.0.0.1:$((8069 + i))/query?format=json" >"$run/node$i.json" 2>/dev/null || true
	done
	for p in "${SIM_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${SIM_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}

# fresh_dir DIR: dies unless DIR is new or empty. byzantine.sh merges every client summary in its
# run directories, and sweep.sh's runner resumes from the rows it finds, so a directory an earlier
# run wrote into would mix the two runs.
fresh_dir() {
	if [[ -d "$1" && -n "$(ls -A "$1")" ]]; then
		die "$1 already holds files (an earlier run's?): its client summaries would be merged into this run's; give another -o or remove it"
	fi
}

# merge_clients RUN: merges the client summaries of RUN (clients.json, clients.txt) and prints
# "committed_tx tps p50_ms p99_ms errors".
merge_clients() {
	local merged
	merged=$(./client -out "$1/clients.json" -merge "$1"/client.*.json)
	echo "$merged" >"$1/clients.txt"
	awk '/committed tx:/ {tx = $3} /throughput:/ {tps = $2} /latency \(ms\):/ {p50 = $6; p99 = $10} /errors:/ {e = $2}
		END {print tx, tps, p50, p99, e}' <<<"$merged"
}

# cleanup_started stops what the sweep scripts started (the pids array); they trap it on EXIT.
cleanup_started() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
