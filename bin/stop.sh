#!/usr/bin/env bash
# Stops what simulation.sh or run.sh and runClient.sh started: clients first, then the server(s).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[[ -f "$CLIENTS_PID" ]] && stop_pids "$CLIENTS_PID" clients
stop_pids "$SERVER_PID" servers
