#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Usage: check-potfiles.sh SOURCE_ROOT
#
# Every C file of client/, daemon/ and shared/ that marks strings for
# translation is listed in po/POTFILES.in, and every file listed there
# exists (xgettext stops at one that does not).  Names each file that
# breaks the rule.
set -u

top=${1:?usage: check-potfiles.sh SOURCE_ROOT}
cd "$top" || exit 1
list=po/POTFILES.in
status=0

# _(), N_(), C_(), NC_(), Q_() and the g_d*gettext() family
marked='(^|[^A-Za-z0-9_])((N|C|NC|Q)?_|g_d[a-z]*gettext2?|d?c?n?gettext)[[:space:]]*\('

for file in $(grep -rlE --include='*.c' --include='*.h' "$marked" client daemon shared | sort); do
	if ! grep -qxF "$file" "$list"; then
		echo "$file marks strings for translation but is not in $list"
		status=1
	fi
done

for file in $(grep -vE '^[[:space:]]*(#|$)' "$list"); do
	if [ ! -f "$file" ]; then
		echo "$list lists $file, which does not exist"
		status=1
	fi
done

[ "$status" -eq 0 ] && echo "every file with marked strings is in $list"
exit "$status"
