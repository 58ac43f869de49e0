#!/usr/bin/env bash
# Ends an experiment: on every host at once stops the clients, then the replicas, by the PIDs in
# REMOTE_DIR/run/*.pid (SIGTERM, up to 10 s, then SIGKILL; never by name); then, once every host
# has stopped and none runs a replica any more, removes the replicas' stores
# (data/node<i>) so that the next start is a new chain. If any host failed, the store
# stays everywhere: a replica that forgets its votes while another still runs could vote twice.
# Logs stay.
#
# Usage: deploy/exp_stop.sh [--keep] [I...]
#   --keep  stop the clients and every replica but keep the stores: start_server.sh then restarts
#           the whole cluster where it was (every committed write reads back, heights and chain
#           digests continue)
#   I...    stop only these replicas and keep their stores (clients keep running); start them
#           again with start_server.sh I...
#   Settings: deploy/settings.sh, or the file in STRATUS_DEPLOY_SETTINGS.
# Idempotent: stopping what does not run only says so.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

ids=()
keep=0
for a; do
	[[ "$a" != -h && "$a" != --help ]] || usage 0
	if [[ "$a" == --keep ]]; then
		keep=1
		continue
	fi
	[[ "$a" =~ ^[1-9][0-9]*$ ]] || usage
	ids+=("$a")
done
((keep == 0 || ${#ids[@]} == 0)) || die "--keep stops every replica; stopping replicas ${ids[*]} keeps their stores anyway"
load_settings
load_hosts
require_cmds ssh
want_replicas ${ids[@]+"${ids[@]}"}

stop_host() {
	local h=$1 r rs=()
	if ((${#ids[@]} > 0)); then
		for r in ${HOST_REPLICAS[$h]:-}; do [[ -z "${want[$r]:-}" ]] || rs+=("$r"); done
		((${#rs[@]} > 0)) || return 0
		step "stopping replicas ${rs[*]}" remote "$h" stop-servers "${rs[@]}"
		return 0
	fi
	step "stopping clients" remote "$h" stop-clients
	step "stopping replicas" remote "$h" stop-servers
}

wipe_host() {
	[[ -n "${HOST_REPLICAS[$1]:-}" ]] || return 0
	# shellcheck disable=SC2086 # the list of replica IDs
	step "removing the stores" remote "$1" wipe-data ${HOST_REPLICAS[$1]}
}

targets=()
for h in "${HOSTS[@]}"; do
	if ((${#ids[@]} == 0)) || [[ -n "${HOST_REPLICAS[$h]:-}" ]]; then targets+=("$h"); fi
done
on_hosts stop_host "${targets[@]}" ||
	die "not every host stopped; the stores stay on every host (run exp_stop.sh again)"
if ((${#ids[@]} == 0 && keep == 0)); then
	# The second phase, only once every host stopped: no replica may run anywhere.
	on_hosts check_idle "${targets[@]}" >/dev/null ||
		die "replicas still run; the stores stay on every host (run exp_stop.sh again)"
	on_hosts wipe_host "${targets[@]}"
fi
if ((${#ids[@]} > 0)); then
	echo "stopped replicas ${ids[*]}; deploy/start_server.sh ${ids[*]} starts them again"
elif ((keep)); then
	echo "experiment stopped on ${#targets[@]} hosts, stores kept; deploy/start_server.sh restarts the cluster from them"
else
	echo "experiment stopped on ${#targets[@]} hosts; deploy/collect.sh fetches the logs"
fi
