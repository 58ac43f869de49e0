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
