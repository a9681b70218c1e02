#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Usage: check-install.sh BUILD_DIR PREFIX EXPECTED_LIST
#
# Installs the build into a temporary DESTDIR and compares what was
# installed under PREFIX (files and links, relative to it) with
# EXPECTED_LIST; prints the difference and fails on any. Then checks the
# installed files themselves:
# - both programs run from where they were installed (--version);
# - the schemas compile (glib-compile-schemas --strict; meson's post-install
#   step skips that in a DESTDIR) and the installed client reads its
#   settings from them;
# - the D-Bus service file is named after its Name=, runs an installed
#   program, and names an installed systemd unit if it names one;
# - systemd-analyze verify accepts the installed user unit (when systemd is
#   present), its paths under PREFIX looked up in the DESTDIR.
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

status=0
fail() {
	echo "FAIL: $*"
	status=1
}

for program in codechat codechatd; do
	if ! out=$("$root/bin/$program" --version 2>&1); then
		fail "the installed $program does not run: $out"
	else
		echo "bin/$program --version: $out"
	fi
done

schemas="$root/share/glib-2.0/schemas"
if [ -d "$schemas" ]; then
	if ! glib-compile-schemas --strict "$schemas"; then
		fail "the installed schemas do not compile"
	elif ! out=$(env -u GSETTINGS_SCHEMA_DIR XDG_DATA_DIRS="$root/share" \
		GSETTINGS_BACKEND=memory "$root/bin/codechat" config get server-url 2>&1); then
		fail "the installed client does not find its installed schema: $out"
	else
		echo "bin/codechat config get server-url, schema from $prefix/share: $out"
	fi
fi

for service in "$root"/share/dbus-1/services/*.service; do
	[ -e "$service" ] || continue
	name=$(sed -n 's/^Name=//p' "$service")
	[ "$(basename "$service")" = "$name.service" ] ||
		fail "$service: the file is not named after Name=$name"
	exec_path=$(sed -n 's/^Exec=\([^ ]*\).*/\1/p' "$service")
	case $exec_path in
	"$prefix"/*) [ -x "$dest$exec_path" ] || fail "$service: Exec=$exec_path is not installed" ;;
	*) fail "$service: Exec=$exec_path is not under $prefix" ;;
	esac
	unit=$(sed -n 's/^SystemdService=//p' "$service")
	if [ -n "$unit" ] && [ -z "$(find "$root" -path "*/systemd/user/$unit")" ]; then
		fail "$service: SystemdService=$unit is not installed"
	fi
done

# verify looks ExecStart= up in the real root: check a copy whose paths
# under the prefix point into the DESTDIR
if command -v systemd-analyze >/dev/null 2>&1; then
	for unit in $(find "$root" -path '*/systemd/user/*.service'); do
		copy="$dest/verify/$(basename "$unit")"
		mkdir -p "$dest/verify" "$dest/runtime"
		sed "s|$prefix/|$dest$prefix/|g" "$unit" >"$copy"
		if ! out=$(XDG_RUNTIME_DIR=$dest/runtime systemd-analyze --user --man=no \
			--generators=no verify "$copy" 2>&1) || [ -n "$out" ]; then
			printf '%s\n' "$out"
			fail "systemd-analyze verify: ${unit#"$root"/}"
		else
			echo "systemd-analyze verify: ${unit#"$root"/}: fine"
		fi
	done
fi
exit $status
