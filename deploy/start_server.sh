#!/usr/bin/env bash
# Starts the replicas on their hosts, one server process per line of pub_ips.txt, all hosts at
# once, and waits for each to print its ready line. A replica that already runs is left alone, so
# running the script again only starts what is missing, such as a replica that crashed: it comes
# back with its store (data/node<i>) and catches up with the others.
#
# Usage: deploy/start_server.sh [--fresh] [I...]
#   I...     only these replicas (line numbers of pub_ips.txt); default: all
#   --fresh  first remove the stores of the replicas to start, for a new chain after a stop
#            that kept it (exp_stop.sh without arguments removes it already); refused while any
#            replica runs
#   Settings: ALGORITHM (or the ALGORITHM environment variable), SERVER_FLAGS, START_TIMEOUT.
# Each replica I runs as
#   bin/server -id I -config config.json -ips ips.txt -keys keys -log_dir logs/node<I>
#              -data_dir data/node<I> -algorithm ALGORITHM SERVER_FLAGS...
# in REMOTE_DIR, with its PID in run/server.<I>.pid and its output in logs/node<I>/server.out.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

fresh=0
ids=()
for a; do
	case "$a" in
	--fresh) fresh=1 ;;
	-h | --help) usage 0 ;;
	*) [[ "$a" =~ ^[1-9][0-9]*$ ]] || usage; ids+=("$a") ;;
	esac
done
load_settings
load_hosts
require_cmds ssh
want_replicas ${ids[@]+"${ids[@]}"}

start_host() {
	local h=$1 r failed=0 rs=()
	for r in ${HOST_REPLICAS[$h]}; do
		((${#want[@]} == 0)) || [[ -n "${want[$r]:-}" ]] || continue
		rs+=("$r")
	done
	((${#rs[@]} > 0)) || return 0
	((fresh == 0)) || step "removing the stores" remote "$h" wipe-data "${rs[@]}"
	for r in "${rs[@]}"; do
		JOB_LABEL="host $h (replica $r)"
		if ! remote "$h" start-server "$r" "$ALGORITHM" "$START_TIMEOUT" "${SERVER_FLAGS[@]}" 2>"$JOB_STDERR"; then
			cat "$JOB_STDERR" >&2
			note_failure "not started: $(grep -v '^[[:space:]]*$' "$JOB_STDERR" | head -n 1)"
			failed=1
		fi
	done
	return $failed
}

targets=()
for h in "${HOSTS[@]}"; do [[ -z "${HOST_REPLICAS[$h]:-}" ]] || targets+=("$h"); done
if ((fresh)); then
	# A replica that forgets its votes while others run could vote twice in a view: --fresh is for
	# a new chain only.
	IDLE_WHY="--fresh starts a new chain: stop them all first (exp_stop.sh)" on_hosts check_idle "${targets[@]}" >/dev/null || die "--fresh: not started"
fi
on_hosts start_host "${targets[@]}"
echo "replicas running ($ALGORITHM); next: deploy/start_client.sh K"
