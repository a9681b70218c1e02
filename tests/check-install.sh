#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Usage: check-install.sh BUILD_DIR PREFIX EXPECTED_LIST
#
# Installs the build into a temporary DESTDIR and compares what was
# installed under PREFIX (files and links, relative to it) with
# EXPECTED_LIST; prints the difference and fails on any.
set -u

build=${1:?usage: check-install.sh BUILD_DIR PREFIX EXPECTED_LIST}
prefix=${2:?}
expected=${3:?}
dest=$(mktemp -d) || exit 1
trap 'rm -rf "$dest"' EXIT

if ! meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$dest.log" 2>&1; then
	cat "$dest.log"
	rm -f "$dest.log"
	echo "meson install failed"
	exit 1
fi
rm -f "$dest.log"
root="$dest$prefix"
actual=$(cd "$root" && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort)
if ! diff=$(printf '%s\n' "$actual" | LC_ALL=C diff -u "$expected" -); then
	printf '%s\n' "$diff"
	echo "the installed files differ from $expected (- expected, + installed)"
	exit 1
fi
echo "$(printf '%s\n' "$actual" | wc -l) files installed, as expected"
