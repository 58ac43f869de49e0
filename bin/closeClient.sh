#!/usr/bin/env bash
# Stops the clients runClient.sh started (they write their summaries on the way out).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
stop_pids "$CLIENTS_PID" clients
