# shellcheck shell=bash disable=SC2034 # read by the deploy/ scripts
# Settings of the deploy/ scripts: a bash file they source. Use another one with
#   STRATUS_DEPLOY_SETTINGS=/path/to/settings.sh deploy/deploy.sh
# Relative file names below are relative to the directory of the settings file in use.

# Who and where on the hosts. REMOTE_DIR is relative to the remote user's home unless absolute;
# every host holds bin/, config.json, ips.txt, keys/, logs/, data/ and run/ (PID files) there.
REMOTE_USER=ubuntu
REMOTE_DIR=stratus

# How to reach the hosts with ssh.
SSH_PORT=22
SSH_IDENTITY=~/.ssh/id_ed25519      # private key used to log in; empty: ssh's defaults and agent
SSH_KNOWN_HOSTS=                    # known_hosts file; empty: ~/.ssh/known_hosts
SSH_STRICT_HOST_KEY_CHECKING=accept-new   # yes, accept-new or no
SSH_OPTIONS=()                      # more ssh options, e.g. (-o ProxyJump=bastion)

# The experiment.
ALGORITHM=${ALGORITHM:-s-hs}        # hotstuff, streamlet, smp-hs, s-hs, s-sl, s-hs-g
CONFIG=../bin/config.json           # uploaded to every host; clients read its benchmark section
SERVER_FLAGS=()                     # more server flags, e.g. (-log_level debug)
START_TIMEOUT=20                    # seconds start_server.sh waits for a replica's ready line
PUB_IPS=pub_ips.txt                 # line i: where to ssh for replica i
IPS=ips.txt                         # line i: the address replicas use among themselves (peer port 3734+i, HTTP 8069+i)
CLIENTS=clients.txt                 # hosts (ssh addresses) that run clients

# Local files.
KEYS_DIR=keys                       # replica keys, made by server -keygen when missing; keep it private
BUILD_DIR=build                     # binaries uploaded to the hosts
BUILD=yes                           # no: upload BUILD_DIR/server and BUILD_DIR/client as they are
TARGET_GOOS=linux                   # platform of the hosts
TARGET_GOARCH=                      # empty: the local architecture
RESULTS_DIR=results                 # collect.sh writes RESULTS_DIR/<date-time>/ unless given a directory
