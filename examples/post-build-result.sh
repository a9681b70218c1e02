#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
#
# post-build-result.sh: runs a command and posts "build NAME passed" or
# "build NAME failed (exit N)" to a codechat room over D-Bus; after a
# failure it also posts the tail of the command's output as a snippet.
# Exits with the command's status, so it can wrap a step in any script.
#
#   examples/post-build-result.sh [-r ROOM] [-n LINES] NAME COMMAND [ARG...]
#   examples/post-build-result.sh -r ci '#42' ninja -C build
#
# Environment: CODECHAT_ROOM (default room, else "general"),
# CODECHAT_DBUS (session or system, default session).

set -u

room=${CODECHAT_ROOM:-general}
lines=20
bus=${CODECHAT_DBUS:-session}

usage() {
	echo "usage: $0 [-r ROOM] [-n LINES] NAME COMMAND [ARG...]" >&2
	exit 1
}

while getopts r:n: opt; do
	case $opt in
	r) room=$OPTARG ;;
	n) lines=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || usage
name=$1
shift

# gdbus reads each argument as GVariant text first, so a text that happens
# to look like a literal ('x', "x", 42) would be changed: always pass a
# quoted literal, with backslashes and single quotes escaped
quote() {
	printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")"
}

send() { # TEXT OPTIONS
	gdbus call --"$bus" \
		--dest io.github.codechat.Codechat.Daemon \
		--object-path /io/github/codechat/Codechat/Daemon \
		--method io.github.codechat.Codechat.Daemon1.Send \
		"$(quote "$room")" "$(quote "$1")" "$2" >/dev/null ||
		echo "$0: could not post to codechat" >&2
}

log=$(mktemp) || exit 4
status_file=$(mktemp) || exit 4
trap 'rm -f "$log" "$status_file"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# show the output as it comes and keep it for the tail; the command's
# status, not tee's, is what counts
{
	"$@" 2>&1
	echo $? >"$status_file"
} | tee "$log"
status=$(cat "$status_file")

if [ "$status" -eq 0 ]; then
	send "build $name passed" '{"kind": <"text">}'
else
	send "build $name failed (exit $status)" '{"kind": <"text">}'
	# a message holds at most 64 KiB of UTF-8: keep the last lines, at most
	# 8000 bytes, without NULs or broken characters
	tail=$(tail -n "$lines" "$log" | tail -c 8000 | tr -d '\000' |
		iconv -c -f UTF-8 -t UTF-8 2>/dev/null)
	if [ -n "$tail" ]; then
		send "$tail" '{"kind": <"code">, "lang": <"text">}'
	fi
fi
exit "$status"
