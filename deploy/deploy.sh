#!/usr/bin/env bash
# Builds the server and client, makes the replica keys when there are none, and uploads to every
# host what it needs, all hosts at once:
#   replica hosts (pub_ips.txt): bin/server, bin/client, config.json, ips.txt and keys/ holding
#                                pubkeys.txt and the private key of each of its own replicas only
#   client hosts (clients.txt):  bin/client, config.json, ips.txt
# into REMOTE_DIR of the settings.
#
# Usage: deploy/deploy.sh
#   Settings: deploy/settings.sh, or the file in STRATUS_DEPLOY_SETTINGS.
#   Keys: KEYS_DIR (default deploy/keys) gets node<i>.key and pubkeys.txt from server -keygen the
#   first time; later runs reuse them. Move that directory away to make new keys.
# Idempotent: running it again uploads the same files again. Replicas and clients that run keep
# the files they started with until restarted (exp_stop.sh, start_server.sh).
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
[[ -f "$CONFIG" ]] || die "configuration $CONFIG not found (CONFIG in $SETTINGS)"
build_binaries
ensure_keys
UPLOAD_MODE=all
on_hosts upload_host "${HOSTS[@]}"
echo "deployed to ${#HOSTS[@]} hosts (replicas: $N, client hosts: ${#CLIENT_HOSTS[@]}); next: deploy/start_server.sh"
