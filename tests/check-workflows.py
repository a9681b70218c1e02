#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Usage: check-workflows.py SOURCE_ROOT REQUIRED_WORKFLOW...

Parses every GitHub Actions workflow in SOURCE_ROOT/.github/workflows as
YAML (python3-yaml) and checks its shape: a name, triggers, jobs that each
have runs-on and steps, steps that each run or use something, actions
pinned to a version, paths given to actions that exist in the tree, and
stages of tools/run-tests that it knows. Each REQUIRED_WORKFLOW (a file
name) must be there.
"""

import glob
import os
import re
import sys

try:
    import yaml
except ImportError:
    print("python3-yaml is missing (apt-get install python3-yaml)")
    sys.exit(1)

failures = []


def fail(message):
    failures.append(message)


def run_tests_stages(root):
    with open(os.path.join(root, "tools", "run-tests"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"unknown stage[^(]*\(([^)]*)\)", text)
    if not m:
        fail("tools/run-tests does not list its stages")
        return set()
    return {s.strip() for s in m.group(1).split(",")}


def check_step(root, where, step, stages):
    if not isinstance(step, dict):
        fail(f"{where}: a step is not a mapping")
        return
    if ("run" in step) == ("uses" in step):
        fail(f"{where}: a step must have either run or uses")
    uses = step.get("uses")
    if uses is not None and not uses.startswith("./"):
        if not re.fullmatch(r"[\w.-]+/[\w./-]+@[\w.-]+", uses):
            fail(f"{where}: action {uses!r} is not pinned to a version")
    for key, value in (step.get("with") or {}).items():
        if key.endswith("path") and isinstance(value, str) and key != "path":
            if not os.path.exists(os.path.join(root, value)):
                fail(f"{where}: {key}: {value} does not exist in the tree")
    run = step.get("run")
    if isinstance(run, str):
        # an expression is a value the check cannot know
        run = re.sub(r"\$\{\{.*?\}\}", "$EXPR", run)
        for m in re.finditer(r"tools/run-tests((?:[ \t]+[\w${}.\[\]-]+)*)", run):
            for stage in m.group(1).split():
                if "$" not in stage and stage not in stages:
                    fail(f"{where}: tools/run-tests has no stage {stage!r}")
        for m in re.finditer(r"(?:^|\s)-f\s+(\S+)", run):
            path = m.group(1)
            if "$" not in path and not os.path.exists(os.path.join(root, path)):
                fail(f"{where}: {path} does not exist in the tree")


def check_workflow(root, path, stages):
    name = os.path.relpath(path, root)
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except yaml.YAMLError as e:
        fail(f"{name}: not valid YAML: {e}")
        return
    if not isinstance(doc, dict):
        fail(f"{name}: not a mapping")
        return
    if not isinstance(doc.get("name"), str):
        fail(f"{name}: no name")
    # YAML 1.1 reads the key "on" as true
    if doc.get("on", doc.get(True)) is None:
        fail(f"{name}: no triggers (on:)")
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        fail(f"{name}: no jobs")
        return
    for job_id, job in jobs.items():
        where = f"{name}: job {job_id}"
        if not isinstance(job, dict):
            fail(f"{where}: not a mapping")
            continue
        if "runs-on" not in job:
            fail(f"{where}: no runs-on")
        steps = job.get("steps")
        if not isinstance(steps, list) or not steps:
            fail(f"{where}: no steps")
            continue
        for i, step in enumerate(steps):
            check_step(root, f"{where} step {i + 1}", step, stages)


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    root = sys.argv[1]
    stages = run_tests_stages(root)
    paths = sorted(glob.glob(os.path.join(root, ".github", "workflows", "*.y*ml")))
    present = {os.path.basename(p) for p in paths}
    for required in sys.argv[2:]:
        if required not in present:
            fail(f".github/workflows/{required} is missing")
    for path in paths:
        check_workflow(root, path, stages)
    for message in failures:
        print(f"FAIL: {message}")
    if failures:
        return 1
    print(f"{len(paths)} workflows parse and are well formed: {', '.join(sorted(present))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
