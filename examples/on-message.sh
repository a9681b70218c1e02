#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
#
# on-message.sh: follows the MessagePosted signal of codechatd with
# `gdbus monitor` and, for every message (in ROOM, if given) whose text
# mentions WORD (a whole word, any case; every message if no WORD), prints
# "[room] <from> text" or runs COMMAND with the message in its environment:
# CODECHAT_ROOM, CODECHAT_FROM, CODECHAT_ID, CODECHAT_TEXT.
#
#   examples/on-message.sh [-r ROOM] [WORD [COMMAND [ARG...]]]
#   examples/on-message.sh -r ci failed notify-send 'build failed'
#   examples/on-message.sh deploy sh -c 'echo "$CODECHAT_FROM: $CODECHAT_TEXT" >>deploys.log'
#
# CODECHAT_DBUS chooses the bus: session (default) or system. gdbus monitor
# does not start the daemon; it waits for it, and follows it across restarts.

set -u

room=
bus=${CODECHAT_DBUS:-session}

usage() {
	echo "usage: $0 [-r ROOM] [WORD [COMMAND [ARG...]]]" >&2
	exit 1
}

while getopts r: opt; do
	case $opt in
	r) room=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
word=
if [ $# -gt 0 ]; then
	word=$1
	shift
fi

# a signal is one line of GVariant text:
# /io/...: io.github.codechat.Codechat.Daemon1.MessagePosted ({'room': <'general'>,
#   'id': <uint64 7>, 'from': <'bob'>, 'ts': <'...'>, 'kind': <'text'>,
#   'text': <'hello'>, 'lang': <'c'>, 'filename': <'x.c'>},)
# room, id and from never hold quotes and come before the text, lang and
# filename (also quote-free) after it. The text keeps its GVariant escapes.
field() { # LINE KEY
	printf '%s\n' "$1" | sed -n "s/.*'$2': <\(uint64 \)\{0,1\}'\{0,1\}\([^'>]*\)'\{0,1\}>.*/\2/p"
}

text_of() { # LINE
	t=${1#*"'text': <"}
	t=${t%>\},)}
	t=${t%>, \'filename\': <*}
	t=${t%>, \'lang\': <*}
	t=${t#?}
	printf '%s' "${t%?}"
}

gdbus monitor --"$bus" --dest io.github.codechat.Codechat.Daemon |
	while IFS= read -r line; do
		case $line in
		*.Daemon1.MessagePosted\ *) ;;
		*) continue ;;
		esac
		# the fields before the text: a text may look like a field
		head=${line%%"'text': <"*}
		msg_room=$(field "$head" room)
		if [ -n "$room" ] && [ "$msg_room" != "$room" ]; then
			continue
		fi
		text=$(text_of "$line")
		if [ -n "$word" ] && ! printf '%s\n' "$text" | grep -qiw -e "$word"; then
			continue
		fi
		from=$(field "$head" from)
		if [ $# -eq 0 ]; then
			printf '[%s] <%s> %s\n' "$msg_room" "$from" "$text"
		else
			CODECHAT_ROOM=$msg_room CODECHAT_FROM=$from \
				CODECHAT_ID=$(field "$head" id) CODECHAT_TEXT=$text \
				"$@" </dev/null
		fi
	done
