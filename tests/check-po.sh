#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Usage: check-po.sh [--complete] PO_FILE...
#
# msgfmt -c on each file: the header, the format strings and the plural
# forms are valid.  With --complete, each file must also have every
# message translated: no fuzzy and no untranslated ones.
set -u

complete=no
if [ "${1:-}" = --complete ]; then
	complete=yes
	shift
fi
[ $# -gt 0 ] || { echo "usage: check-po.sh [--complete] PO_FILE..."; exit 2; }

status=0
for po in "$@"; do
	# msgfmt prints its statistics on stderr, with any errors
	if ! stats=$(LC_ALL=C msgfmt -c --statistics -o /dev/null "$po" 2>&1); then
		printf '%s\n' "$stats"
		echo "$po: msgfmt -c failed"
		status=1
		continue
	fi
	printf '%s: %s\n' "$po" "$stats"
	if [ "$complete" = yes ]; then
		case $stats in
		*fuzzy* | *untranslated*)
			echo "$po: not complete: translate or fix the fuzzy and untranslated messages"
			status=1
			;;
		*" translated message"*) ;;
		*)
			echo "$po: cannot read msgfmt's statistics"
			status=1
			;;
		esac
	fi
done
exit "$status"
