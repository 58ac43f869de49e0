# shellcheck shell=bash
# Shared by the deploy/ scripts. Sourced, not run.
#
# Loads the settings (deploy/settings.sh, or the file STRATUS_DEPLOY_SETTINGS names) and the host
# lists, and runs per-host work in parallel: every host gets a background job, its output is
# printed with a [host] prefix when it ends, and each failure is reported as
#   host X (replica I): what failed
# with a non-zero exit status when any host failed.

# Globals set here are read by the scripts.
# shellcheck disable=SC2034
DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$DEPLOY_DIR/.." && pwd)
PROG=$(basename "$0")

# usage [STATUS]: prints the calling script's header comment (to stdout for -h, else stderr) and exits.
usage() {
	local code=${1:-2}
	if ((code == 0)); then
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	else
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	fi
	exit "$code"
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}

# abs PATH: PATH made absolute against the settings file's directory.
abs() {
	if [[ -z "$1" || "$1" == /* ]]; then printf '%s' "$1"; else printf '%s' "$SETTINGS_DIR/$1"; fi
}

# load_settings reads the settings file and derives the ssh command line (SSH_BASE: options
# without the login method; SSH_ARGS: with key login only, never a prompt). A missing SSH_IDENTITY
# is an error unless IDENTITY_OPTIONAL is set (server_auth.sh may be about to install it).
load_settings() {
	SETTINGS=${STRATUS_DEPLOY_SETTINGS:-$DEPLOY_DIR/settings.sh}
	[[ -f "$SETTINGS" ]] || die "settings file $SETTINGS not found"
	SETTINGS_DIR=$(cd "$(dirname "$SETTINGS")" && pwd)
	# Defaults for anything the file leaves out.
	REMOTE_USER=
	REMOTE_DIR=stratus
	SSH_PORT=22
	SSH_IDENTITY=
	SSH_KNOWN_HOSTS=
	SSH_STRICT_HOST_KEY_CHECKING=accept-new
	SSH_OPTIONS=()
	ALGORITHM=${ALGORITHM:-s-hs}
	CONFIG=$REPO_DIR/bin/config.json
	SERVER_FLAGS=()
	PUB_IPS=pub_ips.txt
	IPS=ips.txt
	CLIENTS=clients.txt
	KEYS_DIR=keys
	BUILD_DIR=build
	BUILD=yes
	TARGET_GOOS=linux
	TARGET_GOARCH=
	RESULTS_DIR=results
	START_TIMEOUT=20
	# shellcheck disable=SC1090 # the settings file is chosen at run time
	source "$SETTINGS" || die "cannot read settings file $SETTINGS"

	PUB_IPS=$(abs "$PUB_IPS")
	IPS=$(abs "$IPS")
	CLIENTS=$(abs "$CLIENTS")
	CONFIG=$(abs "$CONFIG")
	KEYS_DIR=$(abs "$KEYS_DIR")
	BUILD_DIR=$(abs "$BUILD_DIR")
	RESULTS_DIR=$(abs "$RESULTS_DIR")
	# A program that drives these scripts (the experiment runner's ssh backend) changes settings
	# for one run without touching the user's file: STRATUS_DEPLOY_OVERRIDES names a bash file,
	# with absolute paths, read after it.
	if [[ -n "${STRATUS_DEPLOY_OVERRIDES:-}" ]]; then
		# shellcheck disable=SC1090 # chosen at run time
		source "$STRATUS_DEPLOY_OVERRIDES" || die "cannot read $STRATUS_DEPLOY_OVERRIDES"
	fi
	# A leading ~/ means the home directory, where ssh commands start anyway.
	# shellcheck disable=SC2088 # a literal ~ in the setting
	case "$REMOTE_DIR" in
	"~") REMOTE_DIR=. ;;
	"~/"*) REMOTE_DIR=${REMOTE_DIR#"~/"} ;;
	esac
	[[ -n "$REMOTE_DIR" && "$REMOTE_DIR" != / ]] || die "$SETTINGS: REMOTE_DIR must name a directory other than /"
	[[ "$SSH_PORT" =~ ^[0-9]+$ ]] || die "$SETTINGS: SSH_PORT $SSH_PORT is not a port number"
	[[ "$START_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "$SETTINGS: START_TIMEOUT $START_TIMEOUT is not a number of seconds"
	case "$BUILD" in yes | no) ;; *) die "$SETTINGS: BUILD must be yes or no" ;; esac

	SSH_BASE=(-p "$SSH_PORT" -o ConnectTimeout=10 -o ServerAliveInterval=10 -o ServerAliveCountMax=3
		-o LogLevel=ERROR -o "StrictHostKeyChecking=$SSH_STRICT_HOST_KEY_CHECKING")
	[[ -z "$SSH_KNOWN_HOSTS" ]] || SSH_BASE+=(-o "UserKnownHostsFile=$SSH_KNOWN_HOSTS")
	SSH_BASE+=("${SSH_OPTIONS[@]}")
	SSH_ARGS=("${SSH_BASE[@]}" -o BatchMode=yes)
	if [[ -n "$SSH_IDENTITY" && ( -f "$SSH_IDENTITY" || -z "${IDENTITY_OPTIONAL:-}" ) ]]; then
		[[ -f "$SSH_IDENTITY" ]] || die "$SETTINGS: SSH_IDENTITY $SSH_IDENTITY does not exist (make one with ssh-keygen -t ed25519, or leave SSH_IDENTITY empty to use ssh's defaults)"
		SSH_ARGS+=(-i "$SSH_IDENTITY" -o IdentitiesOnly=yes)
	fi
}

# read_list FILE: the entries of a hosts file, one a line; blank lines and # comments are ignored.
read_list() {
	local line n=0
	while IFS= read -r line || [[ -n "$line" ]]; do
		n=$((n + 1))
		line=${line%%#*}
		line=${line//$'\r'/}
		read -r line <<<"$line" || true # trim white space
		[[ -z "$line" ]] && continue
		[[ "$line" =~ [[:space:]] ]] && die "$1 line $n: '$line': one host per line"
		printf '%s\n' "$line"
	done <"$1"
}

# load_hosts reads the host lists into
#   PUB[i], IP[i]      replica i's ssh address and its address among replicas (i from 1)
#   N                  the number of replicas
#   CLIENT_HOSTS       the hosts of clients.txt
#   HOSTS              every distinct ssh address: replica hosts in order, then client-only hosts
#   HOST_REPLICAS[h]   the replicas of host h ("1 3"); HOST_CLIENT[h]=1 when h runs clients
load_hosts() {
	local list i h
	[[ -f "$PUB_IPS" ]] || die "$PUB_IPS not found (line i: where to ssh for replica i)"
	[[ -f "$IPS" ]] || die "$IPS not found (line i: the address replica i uses among replicas)"
	mapfile -t list < <(read_list "$PUB_IPS")
	PUB=("" "${list[@]}")
	mapfile -t list < <(read_list "$IPS")
	IP=("" "${list[@]}")
	N=$((${#PUB[@]} - 1))
	((N > 0)) || die "$PUB_IPS lists no host"
	((${#IP[@]} - 1 == N)) || die "$PUB_IPS lists $N replicas but $IPS lists $((${#IP[@]} - 1)); line i of both is replica i"
	CLIENT_HOSTS=()
	if [[ -f "$CLIENTS" ]]; then mapfile -t CLIENT_HOSTS < <(read_list "$CLIENTS"); fi
	HOSTS=()
	declare -gA HOST_REPLICAS=() HOST_CLIENT=()
	for ((i = 1; i <= N; i++)); do
		h=${PUB[i]}
		[[ -n "${HOST_REPLICAS[$h]:-}" ]] || HOSTS+=("$h")
		HOST_REPLICAS[$h]="${HOST_REPLICAS[$h]:-}${HOST_REPLICAS[$h]:+ }$i"
	done
	for h in "${CLIENT_HOSTS[@]}"; do
		[[ -n "${HOST_REPLICAS[$h]:-}" || -n "${HOST_CLIENT[$h]:-}" ]] || HOSTS+=("$h")
		HOST_CLIENT[$h]=1
	done
}

# host_label HOST: "host X (replica 1)", "host X (replicas 1, 2; clients)", ...
host_label() {
	local r=${HOST_REPLICAS[$1]:-} parts=()
	case "$r" in
	"") ;;
	*" "*) parts+=("replicas ${r// /, }") ;;
	*) parts+=("replica $r") ;;
	esac
	[[ -z "${HOST_CLIENT[$1]:-}" ]] || parts+=(clients)
	local IFS=';'
	local s="${parts[*]}"
	printf 'host %s (%s)' "$1" "${s//;/; }"
}

# shquote ARGS...: the arguments quoted for a POSIX shell, separated by spaces.
shquote() {
	local a out=() q="'\\''"
	for a; do out+=("'${a//\'/$q}'"); done
	printf '%s' "${out[*]}"
}

target() { printf '%s' "${REMOTE_USER:+$REMOTE_USER@}$1"; }

# rssh HOST COMMAND: runs a shell command on HOST with key login.
rssh() {
	local h=$1
	shift
	# shellcheck disable=SC2029 # the command is meant to expand here
	ssh "${SSH_ARGS[@]}" "$(target "$h")" "$@"
}

# remote HOST COMMAND [ARGS...]: runs deploy/remote.sh COMMAND in REMOTE_DIR on HOST.
remote() {
	local h=$1
	shift
	rssh "$h" "bash -s -- $(shquote "$REMOTE_DIR" "$@")" <"$DEPLOY_DIR/remote.sh"
}

# --- parallel jobs ------------------------------------------------------------------------------

JOBS_TMP=
cleanup_jobs() { [[ -z "$JOBS_TMP" ]] || rm -rf "$JOBS_TMP"; }
trap cleanup_jobs EXIT
trap 'cleanup_jobs; trap - INT; kill -INT $$' INT
trap 'cleanup_jobs; exit 143' TERM

# fail MESSAGE: inside a job, records MESSAGE against the job's label (JOB_LABEL, which a job may
# narrow, e.g. to one replica) and ends the job.
fail() {
	note_failure "$@"
	exit 1
}

# note_failure MESSAGE: records a failure and lets the job go on; the job must end non-zero.
note_failure() { printf '%s: %s\n' "$JOB_LABEL" "$*" >>"$JOB_ERR"; }

# step WHAT COMMAND...: runs COMMAND; when it fails, fails the job with WHAT and the last line
# COMMAND wrote to stderr (the whole stderr is in the job's output).
step() {
	local what=$1 rc=0 err
	shift
	"$@" 2>"$JOB_STDERR" || rc=$?
	cat "$JOB_STDERR" >&2
	((rc == 0)) && return 0
	err=$(grep -v '^[[:space:]]*$' "$JOB_STDERR" | tail -n 1)
	if ((rc == 255)) && [[ "$what" != ssh* ]]; then what="$what: ssh failed"; fi
	fail "$what${err:+: $err}"
}

# run_job I FUNC HOST: job I of on_hosts, run in the background (a subshell of its own). Its files:
# JOB_ERR the failures, JOB_STDERR scratch for step, JOB_DIR scratch space.
run_job() {
	JOB_ERR="$JOBS_TMP/$1.err"
	JOB_STDERR="$JOBS_TMP/$1.stderr"
	JOB_DIR="$JOBS_TMP/$1.d"
	JOB_LABEL=$(host_label "$3")
	mkdir -p "$JOB_DIR"
	"$2" "$3"
}

# on_hosts FUNC HOST...: runs "FUNC HOST" for every HOST at once, prints each host's output
# prefixed by [host], then the failures; returns 1 when any host failed.
on_hosts() {
	local fn=$1 i rc msg failures=() pids=() failed=0
	shift
	local hosts=("$@")
	((${#hosts[@]} > 0)) || return 0
	JOBS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/stratus-deploy.XXXXXX")
	for i in "${!hosts[@]}"; do
		run_job "$i" "$fn" "${hosts[i]}" >"$JOBS_TMP/$i.out" 2>&1 </dev/null &
		pids+=($!)
	done
	for i in "${!hosts[@]}"; do
		rc=0
		wait "${pids[i]}" || rc=$?
		[[ ! -s "$JOBS_TMP/$i.out" ]] || sed "s|^|[${hosts[i]}] |" "$JOBS_TMP/$i.out"
		((rc == 0)) && continue
		failed=$((failed + 1))
		if [[ -s "$JOBS_TMP/$i.err" ]]; then
			mapfile -t msg <"$JOBS_TMP/$i.err"
			failures+=("${msg[@]}")
		else
			failures+=("$(host_label "${hosts[i]}"): failed with status $rc (its output is above)")
		fi
	done
	cleanup_jobs
	JOBS_TMP=
	if ((${#failures[@]} > 0)); then
		printf '%s\n' "${failures[@]}" >&2
		echo "$PROG: failed on $failed of ${#hosts[@]} hosts (see above)" >&2
		return 1
	fi
}

# --- binaries -----------------------------------------------------------------------------------

# build_binaries puts the server and client for the hosts into BUILD_DIR (unless BUILD=no) and
# sets LOCAL_SERVER and LOCAL_CLIENT to binaries that run here (for server -keygen and client
# -merge).
build_binaries() {
	command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
	local arch
	if [[ "$BUILD" == no ]]; then
		[[ -x "$BUILD_DIR/server" && -x "$BUILD_DIR/client" ]] || die "BUILD=no but $BUILD_DIR/server or $BUILD_DIR/client is missing"
	else
		command -v go >/dev/null || die "go is needed to build the binaries (or set BUILD=no with binaries in BUILD_DIR)"
		arch=${TARGET_GOARCH:-$(go env GOARCH)}
		echo "building server and client for $TARGET_GOOS/$arch into $BUILD_DIR"
		mkdir -p "$BUILD_DIR"
		# BLS12-381 (blst) is C and assembly: cgo, linked statically so that the binaries run on
		# any Linux host whatever its C library.
		if [[ "$arch" != "$(go env GOARCH)" && -z "${CC:-}" ]]; then
			die "building for $TARGET_GOOS/$arch needs a C cross-compiler (BLS12-381 is C): set CC (e.g. CC=aarch64-linux-gnu-gcc), or build on such a host and deploy with BUILD=no"
		fi
		local static=(-tags netgo,osusergo -ldflags '-linkmode external -extldflags "-static"')
		(cd "$REPO_DIR" && CGO_ENABLED=1 GOOS=$TARGET_GOOS GOARCH=$arch go build "${static[@]}" -o "$BUILD_DIR/server" ./server &&
			CGO_ENABLED=1 GOOS=$TARGET_GOOS GOARCH=$arch go build "${static[@]}" -o "$BUILD_DIR/client" ./client) ||
			die "build failed (cgo with a static C library is needed: gcc and libc6-dev on Debian)"
	fi
	local_binaries
}

# local_binaries sets LOCAL_SERVER and LOCAL_CLIENT: BUILD_DIR's binaries when they run here, else
# ones built for this machine into BUILD_DIR/local.
local_binaries() {
	if [[ -x "$BUILD_DIR/client" ]] && "$BUILD_DIR/client" -h >/dev/null 2>&1; then
		LOCAL_SERVER=$BUILD_DIR/server
		LOCAL_CLIENT=$BUILD_DIR/client
		return
	fi
	command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
	command -v go >/dev/null || die "the binaries in $BUILD_DIR do not run here and go is missing to build local ones"
	mkdir -p "$BUILD_DIR/local"
	(cd "$REPO_DIR" && go build -o "$BUILD_DIR/local/server" ./server && go build -o "$BUILD_DIR/local/client" ./client) ||
		die "build failed"
	LOCAL_SERVER=$BUILD_DIR/local/server
	LOCAL_CLIENT=$BUILD_DIR/local/client
}

# require_cmds CMD...: dies naming the commands that are missing here.
require_cmds() {
	local c missing=()
	for c; do command -v "$c" >/dev/null || missing+=("$c"); done
	((${#missing[@]} == 0)) || die "missing commands: ${missing[*]}"
}

# --- upload (deploy.sh, setup_cli.sh) ----------------------------------------------------------

# ensure_keys makes the replica keys in KEYS_DIR with server -keygen when there are none, and
# otherwise checks that they are the keys of the N replicas of ips.txt.
ensure_keys() {
	local i missing=()
	for ((i = 1; i <= N; i++)); do [[ -f "$KEYS_DIR/node$i.key" ]] || missing+=("node$i.key"); done
	[[ -f "$KEYS_DIR/pubkeys.txt" ]] || missing+=(pubkeys.txt)
	if ((${#missing[@]} == N + 1)) && [[ -z "$(compgen -G "$KEYS_DIR/node*.key")" ]]; then
		echo "making keys for $N replicas in $KEYS_DIR"
		mkdir -p "$KEYS_DIR"
		chmod 700 "$KEYS_DIR"
		"$LOCAL_SERVER" -keygen -config "$CONFIG" -ips "$IPS" -keys "$KEYS_DIR" || die "server -keygen failed"
		for ((i = 1; i <= N; i++)); do
			[[ -f "$KEYS_DIR/node$i.key" ]] || die "server -keygen made no $KEYS_DIR/node$i.key"
		done
		[[ -f "$KEYS_DIR/pubkeys.txt" ]] || die "server -keygen made no $KEYS_DIR/pubkeys.txt"
	elif ((${#missing[@]} > 0)); then
		die "$KEYS_DIR lacks ${missing[*]}: it holds keys made for another ips.txt; move it away to make new keys for all $N replicas"
	elif [[ -e "$KEYS_DIR/node$((N + 1)).key" ]] || (($(grep -c '^[0-9]' "$KEYS_DIR/pubkeys.txt") != N)); then
		die "$KEYS_DIR holds keys for more replicas than the $N of $IPS; move it away to make new keys"
	else
		echo "using the keys of $N replicas in $KEYS_DIR"
	fi
}

# upload_host HOST: copies to HOST what it needs, by UPLOAD_MODE: "all" (deploy.sh) or "client"
# (setup_cli.sh: the client, config.json and ips.txt only). A replica host gets the private keys of
# its own replicas and no other.
upload_host() {
	local h=$1 stage=$JOB_DIR/stage r running cmd dir
	dir=$(shquote "$REMOTE_DIR")
	mkdir -p "$stage/bin"
	cp "$BUILD_DIR/client" "$stage/bin/client"
	cp "$CONFIG" "$stage/config.json"
	cp "$IPS" "$stage/ips.txt"
	if [[ "$UPLOAD_MODE" == all && -n "${HOST_REPLICAS[$h]:-}" ]]; then
		cp "$BUILD_DIR/server" "$stage/bin/server"
		mkdir -m 700 "$stage/keys"
		cp "$KEYS_DIR/pubkeys.txt" "$stage/keys/"
		for r in ${HOST_REPLICAS[$h]}; do
			cp "$KEYS_DIR/node$r.key" "$stage/keys/"
			chmod 600 "$stage/keys/node$r.key"
		done
	fi
	running=$(step "checking for running processes" remote "$h" pids)
	[[ -z "$running" ]] || echo "note: still running here, with the files they started with until restarted: ${running//$'\n'/, }"
	# Files land in .incoming first and are renamed into place, so a running binary is replaced,
	# never overwritten; keys/ is replaced whole so that keys from an earlier mapping do not stay.
	cmd="set -e; mkdir -p $dir; cd $dir; rm -rf .incoming; mkdir .incoming; tar -xf - -C .incoming"
	cmd+="; mkdir -p bin; for f in .incoming/bin/*; do mv -f \"\$f\" bin/; done"
	cmd+="; mv -f .incoming/config.json .incoming/ips.txt ."
	[[ "$UPLOAD_MODE" != all ]] || cmd+="; rm -rf keys; if [ -d .incoming/keys ]; then mv .incoming/keys keys; fi"
	cmd+="; rm -rf .incoming"
	step "upload to $(target "$h"):$REMOTE_DIR" upload "$h" "$stage" "$cmd"
	echo "uploaded $(cd "$stage" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')to $REMOTE_DIR"
}

upload() {
	tar -C "$2" -cf - . | ssh "${SSH_ARGS[@]}" -o Compression=yes "$(target "$1")" "$3"
}

# want_replicas ID...: the replicas a script was asked for (checked against pub_ips.txt) become
# the keys of want; none means all.
declare -A want=()
want_replicas() {
	local a
	for a; do
		((a <= N)) || die "replica $a: pub_ips.txt lists $N replicas"
		want[$a]=1
	done
}

# check_idle HOST: fails the job when a replica runs on HOST; IDLE_WHY says why that matters.
check_idle() {
	local running
	running=$(step "checking for running replicas" remote "$1" pids)
	[[ "$running" != *server* ]] || fail "replicas run here (${running//$'\n'/, })${IDLE_WHY:+; $IDLE_WHY}"
}
