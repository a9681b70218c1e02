#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Counts the individual test cases of one or more `meson test` runs.

Usage: count-tests.py BUILDDIR/meson-logs/testlog.json...

Prints "PASSED FAILED SKIPPED" on one line.

meson 1.0's testlog.json holds one JSON object per test program (its name,
overall result and full stdout) but not the TAP subtests, so the TAP
stream in each program's stdout is read here:

- only top-level "ok"/"not ok" lines count: indented (nested) TAP, the
  "# ..." diagnostics GLib prints and stderr (kept apart from stdout for
  TAP tests) do not;
- "# SKIP" is skipped whatever the status; "not ok ... # TODO" is a known
  failure, counted as skipped; "ok ... # TODO" is an unexpected pass, which
  meson fails, so it counts as failed;
- a test number seen twice counts once (the last line wins), and numbers
  beyond the plan ("1..N") are ignored, so a stray "ok 3" printed by a
  child process cannot add a case;
- a program that failed (crash, "Bail out!", timeout, non-zero exit) with
  no "not ok" of its own counts one failed case, so that a crash is never
  a silent 0;
- a program without TAP output (meson's exitcode protocol) is one case.
"""

import json
import re
import sys

TAP_LINE = re.compile(r"^(not ok|ok)\b\s*(\d+)?(.*)$")
PLAN = re.compile(r"^1\.\.(\d+)")
DIRECTIVE = re.compile(r"#\s*(skip|todo)\b", re.IGNORECASE)

BAD = {"FAIL", "ERROR", "TIMEOUT", "INTERRUPT", "UNEXPECTEDPASS"}


def count_tap(stdout):
    """Returns (passed, failed, skipped, is_tap) for one program's stdout."""
    plan = None
    results = {}
    next_number = 1
    is_tap = False
    for line in stdout.splitlines():
        m = PLAN.match(line)
        if m:
            plan = int(m.group(1))
            is_tap = True
            continue
        m = TAP_LINE.match(line)
        if not m:
            continue
        is_tap = True
        ok = m.group(1) == "ok"
        number = int(m.group(2)) if m.group(2) else next_number
        next_number = number + 1
        rest = m.group(3)
        d = DIRECTIVE.search(rest)
        directive = d.group(1).lower() if d else None
        if directive == "skip":
            outcome = "skipped"
        elif directive == "todo":
            outcome = "failed" if ok else "skipped"
        else:
            outcome = "passed" if ok else "failed"
        results[number] = outcome
    if plan is not None:
        results = {n: o for n, o in results.items() if 1 <= n <= plan}
    outcomes = list(results.values())
    return (
        outcomes.count("passed"),
        outcomes.count("failed"),
        outcomes.count("skipped"),
        is_tap,
    )


def count_log(path):
    passed = failed = skipped = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            test = json.loads(line)
            result = test.get("result", "ERROR")
            p, fl, s, is_tap = count_tap(test.get("stdout") or "")
            if not is_tap:
                if result in BAD:
                    fl = 1
                elif result == "SKIP":
                    s = 1
                else:
                    p = 1
            elif result in BAD and fl == 0:
                fl = 1
            passed += p
            failed += fl
            skipped += s
    return passed, failed, skipped


def main(argv):
    passed = failed = skipped = 0
    for path in argv[1:]:
        p, f, s = count_log(path)
        passed += p
        failed += f
        skipped += s
    print(passed, failed, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
