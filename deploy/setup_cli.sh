#!/usr/bin/env bash
# Prepares the client hosts only: builds and uploads bin/client, config.json and ips.txt to every
# host of clients.txt, for instance after a change to the benchmark section of config.json.
# deploy.sh does this too, together with the replica hosts.
#
# Usage: deploy/setup_cli.sh
#   Settings: deploy/settings.sh, or the file in STRATUS_DEPLOY_SETTINGS.
# Idempotent; clients that run keep their files until they end.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

case "${1:-}" in
"") ;;
-h | --help) usage 0 ;;
*) usage ;;
esac
load_settings
load_hosts
require_cmds ssh tar
((${#CLIENT_HOSTS[@]} > 0)) || die "$CLIENTS lists no host"
[[ -f "$CONFIG" ]] || die "configuration $CONFIG not found (CONFIG in $SETTINGS)"
build_binaries
UPLOAD_MODE=client
on_hosts upload_host "${CLIENT_HOSTS[@]}"
echo "client hosts ready (${#CLIENT_HOSTS[@]}); next: deploy/start_client.sh K"
