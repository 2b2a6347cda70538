# shellcheck shell=bash
# Helpers shared by the shell scripts of tests/, bench/ and images/. Source
# it near the top, before any `cd` (the path is relative to the script):
#
#   set -euo pipefail
#   # shellcheck source=../lib.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
#   script_name="conformance" # optional, see below
#
# Sourcing it only defines the functions and variables below: it prints
# nothing, sets no trap and leaves set -e/-u/-o pipefail to the script.
# Sourcing it a second time in the same shell does nothing.
#
# script_name
#   The prefix of log and die messages. Default: the script's file name
#   (`run.sh`); a script sets it after sourcing to keep its own prefix.
#
# log MESSAGE...
#   Prints "<script_name>: MESSAGE" on stderr.
#
# die MESSAGE...
#   Prints "<script_name>: ERROR: MESSAGE" on stderr and exits with status 1
#   (in a subshell, such as `$(...)`, it exits that subshell only).
#
# on_exit COMMAND
#   Registers COMMAND, one string run with eval as `trap` would run it, to
#   run when the script exits, whichever way: its end, `exit N`, die, or a
#   failed command under set -e. The commands run in the reverse order of
#   their registration (the last resource acquired is released first), each
#   one even if an earlier one failed (set -e is off inside them); then the
#   script exits with the status it was exiting with. Inside them,
#   $exit_status holds that status; a command may assign exit_status to
#   change it, and must not call exit (nor die: the commands after it would
#   not run). Quote for when to expand:
#     on_exit 'rm -rf "$work"'       # $work as it is at exit
#     on_exit "stop_pid $server_pid" # this server, whatever $server_pid becomes
#   on_exit owns the EXIT trap: a script using it must not `trap ... EXIT`.
#   bash also runs it on SIGTERM and SIGHUP, but with $exit_status 0; a
#   script whose commands must see a signal as a failure adds
#   `trap 'exit 130' INT` and `trap 'exit 143' TERM`. A subshell that calls
#   on_exit starts a list of its own (it never runs its parent's commands).
#
# stop_pid PID [WHAT]
#   Stops a process the script started: SIGTERM, SIGKILL if it still runs
#   10 s later (logged, naming WHAT), then reaps it if it is the shell's
#   child. Returns at once if PID is gone already.
#
# free_port
#   Prints a TCP port that is free on 127.0.0.1: the kernel's choice,
#   through python3; without python3, a random port in 20000-59999 that
#   nothing answers on. Another process may take it before the caller binds
#   it: callers that start a server and can see it fail to bind retry.
#
# wait_for TIMEOUT_SECONDS DESCRIPTION COMMAND...
#   Runs COMMAND, then again every $wait_for_interval seconds (default 0.2;
#   a script may set it), until it succeeds. After TIMEOUT_SECONDS it dies
#   with "timed out after TIMEOUT_SECONDSs waiting for DESCRIPTION; last
#   try: COMMAND" followed by the last try's output (at most 50 lines).
#   COMMAND's output is captured, not shown, but die and log called inside
#   COMMAND (a shell function) still reach the script's stderr, so a probe
#   can give up early:
#     serving() { kill -0 "$pid" || die "the server exited"; curl -fsS "$url"; }
#     wait_for 30 "the server to answer $url" serving

[[ -z ${_lib_sourced:-} ]] || return 0
_lib_sourced=1

script_name="${0##*/}"
wait_for_interval=0.2
exit_status=0

# Set (dynamically scoped) by wait_for while COMMAND runs with its output
# captured: the script's own stdout and stderr, and the capture file.
_lib_out_fd=""
_lib_err_fd=""
_lib_wait_out=""

_lib_exit_cmds=()
_lib_exit_owner=""

log() {
	echo "$script_name: $*" >&"${_lib_err_fd:-2}"
}

die() {
	if [[ -n ${_lib_err_fd:-} ]]; then
		# Inside a wait_for probe: back to the script's own stdout and
		# stderr, for this message and for the on_exit commands (the EXIT
		# trap inherits the redirections in force when exit is called).
		exec 1>&"$_lib_out_fd" 2>&"$_lib_err_fd"
		[[ -z ${_lib_wait_out:-} ]] || rm -f "$_lib_wait_out"
	fi
	echo "$script_name: ERROR: $*" >&2
	exit 1
}

on_exit() {
	(($# == 1)) || die "on_exit takes one COMMAND string (quote it as for trap), got: $*"
	if [[ $_lib_exit_owner != "$BASHPID" ]]; then
		# The first call in this shell or subshell (a subshell copies its
		# parent's list but not its trap).
		_lib_exit_cmds=()
		_lib_exit_owner="$BASHPID"
		trap _lib_run_exit_cmds EXIT
	fi
	_lib_exit_cmds+=("$1")
}

_lib_run_exit_cmds() {
	exit_status=$?
	local i
	for ((i = ${#_lib_exit_cmds[@]} - 1; i >= 0; i--)); do
		eval "${_lib_exit_cmds[i]}" || true
	done
	exit "$exit_status"
}

# stop_pid PID [WHAT]: stops a process this script started (SIGTERM, then
# SIGKILL after 10 s) and reaps it when it is our child.
stop_pid() {
	local pid="$1" what="${2:-pid $1}" deadline=$((SECONDS + 10))
	kill -TERM "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "$what ($pid) still running 10 s after SIGTERM; SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	wait "$pid" 2>/dev/null || true
}

free_port() {
	if command -v python3 >/dev/null; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
		return
	fi
	local port i
	for ((i = 0; i < 100; i++)); do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	die "free_port: no free TCP port found on 127.0.0.1"
}

wait_for() {
	(($# >= 3)) || die "usage: wait_for TIMEOUT_SECONDS DESCRIPTION COMMAND..., got: wait_for $*"
	local secs="$1" desc="$2"
	shift 2
	local deadline=$((SECONDS + secs)) ok="" last own_fds=""
	# Locals, so that die and log in COMMAND see them (bash scopes
	# dynamically); a wait_for nested in a probe keeps the outer ones.
	local _lib_out_fd="${_lib_out_fd:-}" _lib_err_fd="${_lib_err_fd:-}" _lib_wait_out
	if [[ -z $_lib_err_fd ]]; then
		exec {_lib_out_fd}>&1 {_lib_err_fd}>&2
		own_fds=1
	fi
	_lib_wait_out="$(mktemp)"
	while :; do
		if "$@" >"$_lib_wait_out" 2>&1; then
			ok=1
			break
		fi
		((SECONDS < deadline)) || break
		sleep "$wait_for_interval"
	done
	[[ -n $ok ]] || last="$(tail -n 50 "$_lib_wait_out" | sed 's/^/    /')"
	rm -f "$_lib_wait_out"
	_lib_wait_out=""
	if [[ -n $own_fds ]]; then
		exec {_lib_out_fd}>&- {_lib_err_fd}>&-
		unset _lib_out_fd _lib_err_fd
	fi
	[[ -n $ok ]] || die "timed out after ${secs}s waiting for $desc; last try: $*${last:+$'\n'$last}"
}
