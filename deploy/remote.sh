#!/usr/bin/env bash
# The host side of the deploy/ scripts. They send this file over ssh and run it there:
#   ssh HOST 'bash -s -- DIR COMMAND [ARGS...]' < deploy/remote.sh
# so the host always runs the copy that matches the local scripts; nothing needs installing
# beyond bash and coreutils. DIR is the deployment directory (relative to the home directory unless
# absolute). Commands:
#   start-server I ALGORITHM TIMEOUT [server flags]   start replica I unless it runs; wait for its ready line
#   stop-servers [I...]                               stop replicas (default: every one with a PID file)
#   start-clients K [client flags]                    start K clients unless clients run here
#   stop-clients                                      stop the clients
#   clients-running                                   print how many clients still run
#   pids                                              print "server I PID" and "client PID" for what runs
#   wipe-data I...                                    remove the stores of stopped replicas
#   query I ADDR PORT                                 print replica I's /query JSON (HTTP over bash's /dev/tcp)
#   pack                                              write a tar archive of logs/ to stdout
# Every process is started with its PID in run/server.<I>.pid or run/clients.pid and is stopped
# only through those files (SIGTERM, up to 10 s, then SIGKILL); a PID counts as ours only while it
# runs our binary from this directory, so a PID reused by another program is never signalled.
set -euo pipefail

# alive PID: the process exists and is not a zombie.
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ -n "$stat" && "${stat:0:1}" != Z ]]
}

# ours PID BINARY: PID runs ./bin/BINARY with this directory as its working directory.
ours() {
	local pid=$1 bin=$2 argv0
	alive "$pid" || return 1
	[[ /proc/$pid/cwd -ef . ]] 2>/dev/null || return 1
	IFS= read -r -d '' argv0 <"/proc/$pid/cmdline" 2>/dev/null || [[ -n "${argv0:-}" ]] || return 1
	[[ "$argv0" == "./bin/$bin" ]]
}

# live_pids FILE BINARY: the PIDs of FILE that are still ours.
live_pids() {
	[[ -f "$1" ]] || return 0
	local p
	while read -r p; do
		[[ "$p" =~ ^[0-9]+$ ]] && ours "$p" "$2" && echo "$p"
	done <"$1"
	return 0
}

# stop_all WHAT FILE BINARY [FILE BINARY...]: SIGTERM the live PIDs of the files, wait up to 10 s,
# SIGKILL what is left, remove the files.
stop_all() {
	local what=$1 pids=() p i left
	shift
	local args=("$@")
	for ((i = 0; i < ${#args[@]}; i += 2)); do
		while read -r p; do [[ -n "$p" ]] && pids+=("$p"); done < <(live_pids "${args[i]}" "${args[i + 1]}")
	done
	if ((${#pids[@]} == 0)); then
		echo "no $what running"
	else
		for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
		for ((i = 0; i < 100; i++)); do
			left=0
			for p in "${pids[@]}"; do alive "$p" && left=1; done
			((left)) || break
			sleep 0.1
		done
		for p in "${pids[@]}"; do
			if alive "$p"; then
				echo "$what: pid $p did not stop in 10 s after SIGTERM; sending SIGKILL" >&2
				kill -KILL "$p" 2>/dev/null || true
			fi
		done
		if ((${#pids[@]} == 1)); then echo "stopped $what (pid ${pids[*]})"; else echo "stopped $what (pids ${pids[*]})"; fi
	fi
	for ((i = 0; i < ${#args[@]}; i += 2)); do rm -f "${args[i]}"; done
}

start_server() {
	local id=$1 alg=$2 timeout=$3 pid running out i line
	shift 3
	[[ "$id" =~ ^[1-9][0-9]*$ ]] || { echo "bad replica id $id" >&2; return 2; }
	[[ -x bin/server ]] || { echo "$PWD/bin/server is missing; run deploy.sh first" >&2; return 1; }
	[[ -f keys/node$id.key && -f keys/pubkeys.txt ]] || { echo "keys/node$id.key or keys/pubkeys.txt is missing in $PWD; run deploy.sh first" >&2; return 1; }
	running=$(live_pids "run/server.$id.pid" server)
	if [[ -n "$running" ]]; then
		echo "replica $id already running (pid $running)"
		return 0
	fi
	mkdir -p run "logs/node$id" "data/node$id"
	out=logs/node$id/server.out
	# Keep the output of an earlier run (for instance the one a crash ended).
	[[ -f "$out" ]] && mv "$out" "logs/node$id/server.$(date +%Y%m%d-%H%M%S.%N).out"
	nohup ./bin/server -id "$id" -config config.json -ips ips.txt -keys keys \
		-log_dir "logs/node$id" -data_dir "data/node$id" -algorithm "$alg" "$@" >"$out" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"run/server.$id.pid"
	for ((i = 0; i < timeout * 10; i++)); do
		if line=$(grep -m1 '^stratus:' "$out" 2>/dev/null); then
			echo "replica $id started (pid $pid): $line"
			return 0
		fi
		if ! alive "$pid"; then
			rm -f "run/server.$id.pid"
			echo "replica $id exited during start-up; the end of $PWD/$out:" >&2
			tail -n 5 "$out" >&2
			return 1
		fi
		sleep 0.1
	done
	stop_all "replica $id" "run/server.$id.pid" server
	echo "replica $id (pid $pid) printed no ready line within $timeout s; stopped it (see $PWD/$out)" >&2
	return 1
}

stop_servers() {
	local ids=("$@") f args=()
	if ((${#ids[@]} == 0)); then
		for f in run/server.*.pid; do
			[[ -e "$f" ]] || continue
			f=${f#run/server.}
			ids+=("${f%.pid}")
		done
	fi
	if ((${#ids[@]} == 0)); then
		echo "no replicas running"
		return 0
	fi
	for f in "${ids[@]}"; do args+=("run/server.$f.pid" server); done
	if ((${#ids[@]} == 1)); then
		stop_all "replica ${ids[*]}" "${args[@]}"
	else
		stop_all "replicas ${ids[*]}" "${args[@]}"
	fi
}

start_clients() {
	local k=$1 running i pid pids=() rc failed=0
	shift
	[[ "$k" =~ ^[1-9][0-9]*$ ]] || { echo "bad client count $k" >&2; return 2; }
	[[ -x bin/client ]] || { echo "$PWD/bin/client is missing; run deploy.sh or setup_cli.sh first" >&2; return 1; }
	running=$(live_pids run/clients.pid client)
	if [[ -n "$running" ]]; then
		echo "clients already running (pids ${running//$'\n'/ }); not starting more (exp_stop.sh stops them)"
		return 0
	fi
	mkdir -p run logs
	# Summaries of an earlier run move aside, so that collect.sh merges this run only.
	if [[ -d logs/clients ]] && [[ -n "$(ls -A logs/clients)" ]]; then
		mv logs/clients "logs/clients.$(date +%Y%m%d-%H%M%S.%N)"
	fi
	mkdir -p logs/clients
	: >run/clients.pid
	for ((i = 1; i <= k; i++)); do
		nohup ./bin/client -config config.json -ips ips.txt -log_dir logs/clients "$@" \
			>"logs/clients/client.$i.out" 2>&1 </dev/null &
		pids+=($!)
		echo "$!" >>run/clients.pid
	done
	# A bad flag or configuration ends a client at once: report it while we can still see its status.
	sleep 1
	for i in "${!pids[@]}"; do
		pid=${pids[i]}
		alive "$pid" && continue
		rc=0
		wait "$pid" || rc=$?
		if ((rc != 0)); then
			failed=1
			echo "client $((i + 1)) (pid $pid) exited with status $rc:" >&2
			tail -n 5 "logs/clients/client.$((i + 1)).out" >&2
		fi
	done
	if ((failed)); then
		stop_all clients run/clients.pid client
		return 1
	fi
	echo "started $k client$( ((k == 1)) || echo s) (pid$( ((k == 1)) || echo s) ${pids[*]}); output in $PWD/logs/clients"
}

query() {
	local id=$1 addr=$2 port=$3 body
	# shellcheck disable=SC2016 # the inner script gets its values as arguments
	body=$(timeout 5 bash -c '
		exec 3<>"/dev/tcp/$1/$2"
		printf "GET /query?format=json HTTP/1.0\r\nHost: stratus\r\n\r\n" >&3
		sed "1,/^\r*$/d" <&3' query "$addr" "$port" 2>/dev/null) || true
	[[ "$body" == "{"* ]] || { echo "replica $id did not answer on $addr:$port" >&2; return 1; }
	printf '%s\n' "$body"
}

main() {
	local dir=$1 cmd=$2 f
	shift 2
	if [[ ! -d "$dir" ]]; then
		case "$cmd" in
		start-*) echo "$dir does not exist on this host; run deploy.sh first" >&2; return 1 ;;
		pack) tar -cf - --files-from /dev/null; return 0 ;;
		clients-running) echo 0; return 0 ;;
		pids) return 0 ;;
		*)
			echo "nothing deployed in $dir"
			return 0
			;;
		esac
	fi
	cd "$dir"
	case "$cmd" in
	start-server) start_server "$@" ;;
	stop-servers) stop_servers "$@" ;;
	start-clients) start_clients "$@" ;;
	stop-clients) stop_all clients run/clients.pid client ;;
	clients-running) live_pids run/clients.pid client | wc -l ;;
	pids)
		for f in run/server.*.pid; do
			[[ -e "$f" ]] || continue
			f=${f#run/server.}
			f=${f%.pid}
			live_pids "run/server.$f.pid" server | sed "s/^/server $f /"
		done
		live_pids run/clients.pid client | sed 's/^/client /'
		;;
	wipe-data)
		for f in "$@"; do
			[[ "$f" =~ ^[1-9][0-9]*$ ]] || { echo "bad replica id $f" >&2; return 2; }
			if [[ -n "$(live_pids "run/server.$f.pid" server)" ]]; then
				echo "replica $f runs; its store stays"
			elif [[ -d "data/node$f" ]]; then
				rm -rf "data/node$f"
				echo "removed the store of replica $f"
			fi
		done
		;;
	query) query "$@" ;;
	pack) if [[ -d logs ]]; then tar -cf - logs; else tar -cf - --files-from /dev/null; fi ;;
	*)
		echo "remote.sh: unknown command $cmd" >&2
		return 2
		;;
	esac
}

main "$@"
