#!/usr/bin/env bash
# Fetches the results from every host at once into a local directory:
#   DEST/<host>/logs/...    each host's logs: node<i>/server.*.log and server.out (with the final
#                           statistics once stopped), clients/client.<pid>.log, .json, .out
#   DEST/node<i>.json       replica i's /query statistics, when it still runs
#   DEST/clients.json       the merge of the client summaries of the latest client run (client
#                           -merge), and DEST/clients.txt its text form
#   DEST/setup/             the settings, host lists and configuration of the run
#
# Usage: deploy/collect.sh [DEST]
#   DEST defaults to RESULTS_DIR/<date-time> (RESULTS_DIR of the settings, default deploy/results).
# Run it after the clients end (start_client.sh --wait) and before or after exp_stop.sh; running
# it again fetches everything again.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

case "${1:-}" in
-h | --help) usage 0 ;;
-*) usage ;;
esac
(($# <= 1)) || usage
load_settings
load_hosts
require_cmds ssh tar
dest=${1:-$RESULTS_DIR/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

fetch_logs() { remote "$1" pack | tar -xf - -C "$2"; }

collect_host() {
	local h=$1 r n
	mkdir -p "$dest/$h"
	step "fetching logs" fetch_logs "$h" "$dest/$h"
	for r in ${HOST_REPLICAS[$h]:-}; do
		if remote "$h" query "$r" "${IP[r]}" $((8069 + r)) >"$JOB_DIR/node$r.json" 2>"$JOB_STDERR"; then
			mv "$JOB_DIR/node$r.json" "$dest/node$r.json"
		else
			echo "replica $r: no statistics ($(head -n 1 "$JOB_STDERR"))"
		fi
	done
	if [[ -n "${HOST_CLIENT[$h]:-}" ]]; then
		n=$(step "counting clients" remote "$h" clients-running)
		((n == 0)) || echo "warning: $n clients still run here; their summaries are not written yet"
	fi
}

on_hosts collect_host "${HOSTS[@]}"
mkdir -p "$dest/setup"
cp "$SETTINGS" "$dest/setup/settings.sh"
cp "$PUB_IPS" "$dest/setup/pub_ips.txt"
cp "$IPS" "$dest/setup/ips.txt"
[[ ! -f "$CLIENTS" ]] || cp "$CLIENTS" "$dest/setup/clients.txt"
cp "$CONFIG" "$dest/setup/config.json"

summaries=()
for h in "${CLIENT_HOSTS[@]}"; do
	for f in "$dest/$h"/logs/clients/client.*.json; do [[ -f "$f" ]] && summaries+=("$f"); done
done
if ((${#summaries[@]} == 0)); then
	echo "$PROG: no client summaries yet (clients not run, or still running); results in $dest" >&2
	exit 0
fi
local_binaries
"$LOCAL_CLIENT" -out "$dest/clients.json" -merge "${summaries[@]}" >"$dest/clients.txt" ||
	die "merging the client summaries failed (see $dest/clients.txt)"
cat "$dest/clients.txt"
echo "results in $dest"
