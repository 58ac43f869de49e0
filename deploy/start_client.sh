#!/usr/bin/env bash
# Starts K client processes on every host of clients.txt, all hosts at once. Each client sends to
# the replicas of ips.txt (HTTP port 8069+i) with the benchmark section of config.json unless
# flags say otherwise, and writes client.<pid>.log and its summary client.<pid>.json in
# REMOTE_DIR/logs/clients (the previous run's files move to logs/clients.<date>). A host where
# clients still run is skipped.
#
# Usage: deploy/start_client.sh [--wait] K [client flags...]
#   e.g. deploy/start_client.sh --wait 2 -duration 30 -rate 5000
#   --wait  return when every client has ended (then collect.sh fetches the summaries)
#   Settings: deploy/settings.sh, or the file in STRATUS_DEPLOY_SETTINGS.
# PIDs: REMOTE_DIR/run/clients.pid; exp_stop.sh stops them early.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

[[ "${1:-}" != -h && "${1:-}" != --help ]] || usage 0
wait_end=0
if [[ "${1:-}" == --wait ]]; then
	wait_end=1
	shift
fi
[[ "${1:-}" =~ ^[1-9][0-9]*$ ]] || usage
k=$1
shift
load_settings
load_hosts
require_cmds ssh
((${#CLIENT_HOSTS[@]} > 0)) || die "$CLIENTS lists no host"

client_flags=("$@")
start_host() {
	JOB_LABEL="host $1 (clients)"
	step "clients not started" remote "$1" start-clients "$k" "${client_flags[@]}"
}
on_hosts start_host "${CLIENT_HOSTS[@]}"
((wait_end)) || exit 0

echo "waiting for the clients to end"
while :; do
	total=0
	for h in "${CLIENT_HOSTS[@]}"; do
		n=$(remote "$h" clients-running) || die "host $h (clients): ssh failed while waiting for the clients"
		total=$((total + n))
	done
	((total > 0)) || break
	sleep 2
done
echo "all clients ended; next: deploy/collect.sh"
