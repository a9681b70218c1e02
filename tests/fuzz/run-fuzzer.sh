#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Usage: run-fuzzer.sh FUZZER SEED_DIR WORK_DIR
#
# Runs a libFuzzer target for CODECHAT_FUZZ_SECONDS (default 60) from the
# seeds of the source tree, which it only reads: the inputs it finds go to
# WORK_DIR/corpus, a crashing one to WORK_DIR/crash-* (printed below).
# Exits 1 on a crash, leak, timeout or out-of-memory (not libFuzzer's 77,
# which meson would take for a skipped test).
set -u

fuzzer=${1:?usage: run-fuzzer.sh FUZZER SEED_DIR WORK_DIR}
seeds=${2:?}
work=${3:?}
seconds=${CODECHAT_FUZZ_SECONDS:-60}

mkdir -p "$work/corpus" || exit 1
# only this run's failures
rm -f "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*
"$fuzzer" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
	-error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
	-artifact_prefix="$work/" \
	"$work/corpus" "$seeds"
rc=$?
for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
	[ -e "$f" ] && echo "run-fuzzer: $(basename "$fuzzer"): failing input $f"
done
exit "$rc"
