#!/usr/bin/env bash
# Installs a public key in ~/.ssh/authorized_keys of REMOTE_USER on every host of pub_ips.txt and
# clients.txt, all hosts at once, so that the other deploy/ scripts log in with the matching
# private key (SSH_IDENTITY of the settings). A key that is there already is not added again.
#
# Usage: deploy/auth/server_auth.sh [-i PUBLIC_KEY] [-k | -I IDENTITY]
#   -i PUBLIC_KEY  the key to install (default: SSH_IDENTITY.pub of the settings, or
#                  ~/.ssh/id_ed25519.pub when SSH_IDENTITY is empty)
#   (default)      log in with REMOTE_USER's password, through sshpass: the password comes from the
#                  SSHPASS environment variable, or is typed at a prompt when SSHPASS is unset.
#                  It is never read from a file or given on a command line. Every host gets the
#                  same password.
#   -k             log in with a key that already works (SSH_IDENTITY, or ssh's defaults and agent)
#   -I IDENTITY    log in with this private key, e.g. the key a cloud provider installed, to add
#                  your own key next to it
#   Settings: deploy/settings.sh, or the file in STRATUS_DEPLOY_SETTINGS.
# Needs sshpass for password login (Debian/Ubuntu: apt-get install sshpass). Unknown host keys are
# handled by SSH_STRICT_HOST_KEY_CHECKING (accept-new by default records them on first contact).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib.sh
source "$(dirname "$0")/../lib.sh"

pubkey=
mode=password
identity=
while getopts ':i:kI:h' opt; do
	case "$opt" in
	i) pubkey=$OPTARG ;;
	k) mode=key ;;
	I)
		mode=key
		identity=$OPTARG
		;;
	h) usage 0 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# == 0)) || usage
IDENTITY_OPTIONAL=1
load_settings
load_hosts
require_cmds ssh ssh-keygen

if [[ -z "$pubkey" ]]; then
	if [[ -n "$SSH_IDENTITY" ]]; then pubkey=$SSH_IDENTITY.pub; else pubkey=$HOME/.ssh/id_ed25519.pub; fi
fi
[[ -f "$pubkey" ]] || die "public key $pubkey not found (make a key pair with ssh-keygen -t ed25519, or give one with -i)"
key=$(grep -v '^[[:space:]]*\(#\|$\)' "$pubkey" | head -n 1 | tr -d '\r')
read -r ktype kblob _ <<<"$key" || true
if ! [[ "$ktype" == ssh-* || "$ktype" == ecdsa-* || "$ktype" == sk-* ]] || [[ -z "$kblob" ]] ||
	! ssh-keygen -l -f "$pubkey" >/dev/null 2>&1; then
	die "$pubkey is not an OpenSSH public key"
fi

# How to log in: AUTH_ARGS for ssh, AUTH_CMD in front of it (sshpass -e for a password).
AUTH_CMD=()
case "$mode" in
password)
	command -v sshpass >/dev/null || die "password login needs sshpass (apt-get install sshpass), or use -k / -I with a key that works"
	if [[ -z "${SSHPASS:-}" ]]; then
		[[ -t 0 ]] || die "no password: set the SSHPASS environment variable, or run from a terminal to type it"
		read -r -s -p "Password of ${REMOTE_USER:-$(id -un)} on the hosts: " SSHPASS
		echo
		[[ -n "$SSHPASS" ]] || die "empty password"
	fi
	export SSHPASS
	AUTH_CMD=(sshpass -e)
	AUTH_ARGS=("${SSH_BASE[@]}" -o BatchMode=no -o PubkeyAuthentication=no
		-o "PreferredAuthentications=password,keyboard-interactive" -o NumberOfPasswordPrompts=1)
	;;
key)
	if [[ -n "$identity" ]]; then
		[[ -f "$identity" ]] || die "identity $identity not found"
		AUTH_ARGS=("${SSH_BASE[@]}" -o BatchMode=yes -i "$identity" -o IdentitiesOnly=yes)
	else
		AUTH_ARGS=("${SSH_ARGS[@]}")
	fi
	;;
esac

# The host side, for any POSIX shell: the key arrives on stdin; it is added unless a line already
# holds its base64 blob. A missing final newline is supplied first.
# shellcheck disable=SC2016 # expands on the host
install_cmd='umask 077 && mkdir -p .ssh && chmod 700 .ssh && touch .ssh/authorized_keys && chmod 600 .ssh/authorized_keys &&
IFS= read -r key && blob=$(printf "%s\n" "$key" | cut -d" " -f2) &&
if grep -qF -- "$blob" .ssh/authorized_keys; then echo "key already installed"; else
{ if [ -s .ssh/authorized_keys ] && [ -n "$(tail -c 1 .ssh/authorized_keys)" ]; then echo; fi; printf "%s\n" "$key"; } >>.ssh/authorized_keys && echo "key installed"; fi'

private=${pubkey%.pub}
auth_host() {
	local h=$1
	step "installing the key" "${AUTH_CMD[@]}" ssh "${AUTH_ARGS[@]}" "$(target "$h")" "$install_cmd" <<<"$key"
	# Check that the key now opens the door, when its private half is here.
	if [[ "$private" != "$pubkey" && -f "$private" ]]; then
		step "logging in with $private" ssh "${SSH_BASE[@]}" -o BatchMode=yes -i "$private" -o IdentitiesOnly=yes "$(target "$h")" true
		echo "key login works"
	fi
}

on_hosts auth_host "${HOSTS[@]}"
echo "key $(ssh-keygen -l -f "$pubkey" | cut -d' ' -f2) installed for ${REMOTE_USER:-$(id -un)} on ${#HOSTS[@]} hosts"
