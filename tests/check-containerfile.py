#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Usage: check-containerfile.py SOURCE_ROOT PROJECT_VERSION [CODECHATD]

Checks the Containerfile at SOURCE_ROOT, as no container engine runs here:
its stages are Debian 12, the final one runs as a user other than root with
a volume, a port and a HEALTHCHECK on /healthz; every file COPY takes from
the build context exists and is not left out by .dockerignore, which leaves
out the build directories; every CODECHATD_* variable is one codechatd
reads (daemon/codechat-config.c).

With CODECHATD (the daemon just built), also runs what the image runs, with
the image's environment (the data dir a temporary one, the listen port 0):
codechatd refuses to start without accounts, `codechatd user add` makes
one, then codechatd starts, and the HEALTHCHECK's own command succeeds
against it, fails against a server that answers /healthz with an error, and
fails once the daemon is stopped.

Prints TAP.
"""

import fnmatch
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import http.server

# every FROM: Debian 12, optionally pinned to a digest
DEBIAN_12 = re.compile(
    r"^(docker\.io/(library/)?)?debian:bookworm(-slim)?(@sha256:[0-9a-f]{64})?$"
)
# how codechat-config.c reads a setting from the CODECHATD_* environment
LAYER_CALL = re.compile(r"\blayer_(?:string|int|bool|strv)\(\s*&layers,\s*\"([a-z-]+)\"")
# paths a build leaves in the source tree, that the context must not carry
BUILD_PATHS = [
    "build/build.ninja",
    "build-asan/build.ninja",
    "_build/build.ninja",
    "_ci/gcc/build.ninja",
    ".flatpak-builder/cache",
    "flatpak/_build/files",
]
# waits for the daemon: generous for an ASan build, quick when all is well
DAEMON_WAIT_S = 20


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, ok, description, diagnostics=None):
        self.n += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} - {description}")
        if not ok:
            self.failed += 1
            for line in str(diagnostics or "").splitlines():
                print(f"# {line}")
        sys.stdout.flush()
        return ok

    def finish(self):
        print(f"1..{self.n}")
        return 1 if self.failed else 0


class Instruction:
    def __init__(self, lineno, keyword, args):
        self.lineno = lineno
        self.keyword = keyword
        self.args = args

    def flags_and_rest(self):
        """--flag=value options first, then the rest"""
        flags = {}
        rest = self.args
        while rest.startswith("--"):
            word, _, rest = rest.partition(" ")
            name, _, value = word[2:].partition("=")
            flags[name] = value
            rest = rest.lstrip()
        return flags, rest

    def __repr__(self):
        return f"line {self.lineno}: {self.keyword} {self.args}"


def parse_containerfile(text):
    """logical lines: comments out, continuation lines joined"""
    instructions = []
    pending = None
    start = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and pending is None):
            continue
        if pending is None:
            pending = ""
            start = lineno
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        pending += stripped
        keyword, _, args = pending.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), args.strip()))
        pending = None
    if pending is not None:
        raise ValueError(f"line {start}: continuation at the end of the file")
    return instructions


def split_stages(instructions):
    stages = []
    for ins in instructions:
        if ins.keyword == "FROM":
            stages.append([ins])
        elif stages:
            stages[-1].append(ins)
        elif ins.keyword != "ARG":
            raise ValueError(f"{ins!r}: before the first FROM")
    return stages


def key_values(args):
    """ENV and LABEL: KEY=VALUE pairs, or the old ENV KEY VALUE"""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: args.partition(" ")[2].strip()}
    pairs = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise ValueError(f"{args}: “{word}” is not KEY=VALUE")
        pairs[key] = value
    return pairs


def exec_form(args):
    """the JSON array of CMD or HEALTHCHECK CMD, None for the shell form"""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def path_matches(pattern, path):
    """a .dockerignore pattern against a path: * within a component, ** across"""

    def match(pparts, parts):
        if not pparts:
            return not parts
        if pparts[0] == "**":
            return any(match(pparts[1:], parts[i:]) for i in range(len(parts) + 1))
        return bool(parts) and fnmatch.fnmatchcase(parts[0], pparts[0]) and match(
            pparts[1:], parts[1:]
        )

    return match([p for p in pattern.split("/") if p], path.split("/"))


def ignored(patterns, path):
    """as docker and buildah read .dockerignore: the last matching pattern
    wins, and a pattern that matches a directory leaves out what is in it"""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = os.path.normpath(pattern.lstrip("!").strip()).lstrip("/")
        if any(path_matches(pattern, prefix) for prefix in prefixes):
            result = not negate
    return result


def read_ignore_file(root):
    path = os.path.join(root, ".dockerignore")
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    return [line for line in lines if line and not line.startswith("#")]


def meson_files(root, folder=""):
    """the meson.build files a build reads: the top one and its subdir()s"""
    rel = os.path.join(folder, "meson.build")
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        text = f.read()
    found = [rel]
    for sub in re.findall(r"\bsubdir\(\s*'([^']+)'", text):
        found += meson_files(root, os.path.join(folder, sub))
    return found


def known_env_names(root):
    with open(os.path.join(root, "daemon", "codechat-config.c"), encoding="utf-8") as f:
        keys = set(LAYER_CALL.findall(f.read()))
    return {"CODECHATD_" + key.upper().replace("-", "_") for key in keys}


def static_checks(tap, root, version, stages):
    final = stages[-1] if stages else []
    final_by_kw = {}
    for ins in final:
        final_by_kw.setdefault(ins.keyword, []).append(ins)

    tap.check(
        len(stages) >= 2, "at least two stages (a build and a runtime)", f"{len(stages)} stages"
    )

    names = set()
    for stage in stages:
        flags, rest = stage[0].flags_and_rest()
        words = rest.split()
        image = words[0] if words else ""
        tap.check(
            DEBIAN_12.match(image) is not None or image in names,
            f"line {stage[0].lineno}: FROM {image} is Debian 12 (bookworm)",
            "use debian:bookworm or debian:bookworm-slim",
        )
        if len(words) == 3 and words[1].upper() == "AS":
            names.add(words[2])

    users = final_by_kw.get("USER", [])
    user = users[-1].args.split(":")[0] if users else ""
    tap.check(
        user not in ("", "root", "0"),
        "the final stage runs as a user other than root",
        f"USER is “{user}”",
    )

    env = {}
    for ins in final_by_kw.get("ENV", []):
        env.update(key_values(ins.args))
    known = known_env_names(root)
    tap.check(
        "CODECHATD_LISTEN" in known,
        "codechat-config.c reads settings from CODECHATD_*",
        sorted(known),
    )
    ours = sorted(name for name in env if name.startswith("CODECHATD_"))
    tap.check(bool(ours), "the final stage sets CODECHATD_* variables")
    for name in ours:
        tap.check(
            name in known,
            f"{name} is a variable codechatd reads",
            "known: " + " ".join(sorted(known)),
        )

    volumes = []
    for ins in final_by_kw.get("VOLUME", []):
        value = exec_form(ins.args)
        volumes += value if value is not None else ins.args.split()
    data_dir = env.get("CODECHATD_DATA_DIR")
    tap.check(
        data_dir is not None and data_dir in volumes,
        "the data dir (CODECHATD_DATA_DIR) is a VOLUME",
        f"CODECHATD_DATA_DIR={data_dir}, VOLUME {volumes}",
    )

    exposed = [w.split("/")[0] for ins in final_by_kw.get("EXPOSE", []) for w in ins.args.split()]
    listen_port = env.get("CODECHATD_LISTEN", "").rpartition(":")[2]
    tap.check(
        bool(listen_port) and listen_port in exposed,
        "the port of CODECHATD_LISTEN is EXPOSEd",
        f"CODECHATD_LISTEN={env.get('CODECHATD_LISTEN')}, EXPOSE {exposed}",
    )

    healthchecks = final_by_kw.get("HEALTHCHECK", [])
    health_cmd = None
    health_timeout = 30.0
    if healthchecks:
        flags, rest = healthchecks[-1].flags_and_rest()
        if rest.upper().startswith("CMD "):
            health_cmd = exec_form(rest[4:].strip())
        m = re.fullmatch(r"(\d+)s", flags.get("timeout", ""))
        if m:
            health_timeout = float(m.group(1))
    tap.check(
        health_cmd is not None and any("/healthz" in arg for arg in health_cmd),
        "the final stage has a HEALTHCHECK CMD [...] that asks /healthz",
        healthchecks[-1] if healthchecks else "no HEALTHCHECK",
    )

    cmds = final_by_kw.get("CMD", [])
    cmd = exec_form(cmds[-1].args) if cmds else None
    tap.check(
        cmd is not None
        and os.path.basename(cmd[0]) == "codechatd"
        and "ENTRYPOINT" not in final_by_kw,
        "the final stage's CMD runs codechatd, with no ENTRYPOINT "
        "(so that `IMAGE codechatd user add NICK` works)",
        cmds[-1] if cmds else "no CMD",
    )

    labels = {}
    for ins in final_by_kw.get("LABEL", []):
        labels.update(key_values(ins.args))
    tap.check(
        labels.get("org.opencontainers.image.version") == version,
        f"the label org.opencontainers.image.version is the project's version ({version})",
        labels,
    )

    try:
        patterns = read_ignore_file(root)
    except OSError as e:
        patterns = []
        tap.check(False, ".dockerignore can be read", e)
    for path in BUILD_PATHS:
        tap.check(ignored(patterns, path), f".dockerignore leaves {path} out of the build context")

    seen = set()
    for stage in stages:
        for ins in stage:
            if ins.keyword not in ("COPY", "ADD"):
                continue
            flags, rest = ins.flags_and_rest()
            if "from" in flags:
                tap.check(
                    flags["from"] in seen,
                    f"line {ins.lineno}: {ins.keyword} --from={flags['from']} "
                    "names an earlier stage",
                )
                continue
            sources = exec_form(rest)
            sources = sources[:-1] if sources is not None else shlex.split(rest)[:-1]
            for source in sources:
                rel = os.path.normpath(source).lstrip("/")
                where = os.path.join(root, rel)
                tap.check(
                    os.path.exists(where) and (rel == "." or not ignored(patterns, rel)),
                    f"line {ins.lineno}: {ins.keyword} {source} exists in the build context",
                    f"{where} is missing, or .dockerignore leaves it out",
                )
                if rel == ".":
                    # the whole context: what meson reads must be in it
                    needed = meson_files(root) + ["meson_options.txt"]
                    left_out = [path for path in needed if ignored(patterns, path)]
                    tap.check(
                        not left_out,
                        f"line {ins.lineno}: .dockerignore keeps the {len(needed)} meson "
                        "files in the context",
                        f"left out: {left_out}",
                    )
        words = stage[0].flags_and_rest()[1].split()
        if len(words) == 3:
            seen.add(words[2])

    return env, cmd, health_cmd, health_timeout


class ErrorHandler(http.server.BaseHTTPRequestHandler):
    """a server on the port that is not a healthy codechatd"""

    def do_GET(self):
        body = b'{"status":"ok"}'
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def daemon_env(image_env, data_dir, listen):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODECHATD_")}
    env.update(image_env)
    env["CODECHATD_DATA_DIR"] = data_dir
    env["CODECHATD_LISTEN"] = listen
    child_asan = os.environ.get("CODECHAT_TEST_CHILD_ASAN_OPTIONS")
    if child_asan:
        env["ASAN_OPTIONS"] = child_asan
    return env


def start_daemon(cmd, env, log_path):
    """runs cmd until it prints its first line or exits: (process, the
    line or None, what it wrote on stderr so far)"""
    with open(log_path, "w", encoding="utf-8") as log:
        daemon = subprocess.Popen(
            cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True
        )
    found = []
    reader = threading.Thread(target=lambda: found.append(daemon.stdout.readline()), daemon=True)
    reader.start()
    reader.join(DAEMON_WAIT_S)
    line = found[0].strip() if found and found[0] else None
    if line is None:
        try:
            daemon.wait(DAEMON_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
    with open(log_path, encoding="utf-8", errors="replace") as f:
        return daemon, line, f.read()


def stop_daemon(daemon):
    """SIGTERM, then its exit status (None if it had to be killed)"""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        status = daemon.wait(DAEMON_WAIT_S)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        status = None
    daemon.stdout.close()
    return status


def run(cmd, env, timeout):
    """(exit status or None on a timeout, stdout, stderr)"""
    try:
        result = subprocess.run(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", e.stderr or ""
    return result.returncode, result.stdout, result.stderr


def run_healthcheck(health_cmd, env, timeout):
    rc, out, err = run(health_cmd, env, timeout)
    return rc, out + err


def runtime_checks(tap, codechatd, env, cmd, health_cmd, health_timeout):
    if cmd is None or health_cmd is None or "CODECHATD_LISTEN" not in env:
        tap.check(False, "the image's CMD, HEALTHCHECK and CODECHATD_LISTEN are known, to run them")
        return
    host = env["CODECHATD_LISTEN"].rpartition(":")[0]
    # what the image runs, with the daemon just built
    daemon_cmd = [codechatd] + cmd[1:]

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = os.path.join(tmp, "data")
        run_env = daemon_env(env, data_dir, f"{host}:0")

        daemon, line, log = start_daemon(daemon_cmd, run_env, os.path.join(tmp, "refused.log"))
        status = stop_daemon(daemon)
        refused = line is None and status == 1 and "without accounts" in log and "user add" in log
        if host in ("localhost", "127.0.0.1", "::1", "[::1]"):
            refused = True  # loopback: no protected mode to see
        tap.check(
            refused,
            f"without accounts, codechatd on {host} refuses to start and says "
            "“codechatd user add”",
            f"exit {status}\nstdout: {line}\nstderr: {log}",
        )

        rc, out, err = run([codechatd, "user", "add", "alice"], run_env, DAEMON_WAIT_S)
        lines = out.splitlines()
        tap.check(
            rc == 0 and len(lines) == 1 and len(lines[0]) >= 16,
            "`codechatd user add alice` in the image's environment prints a token",
            f"exit {rc}\nstdout: {out}\nstderr: {err}",
        )

        log_path = os.path.join(tmp, "daemon.log")
        daemon, line, log = start_daemon(daemon_cmd, run_env, log_path)
        try:
            m = re.match(r"codechatd: listening on wss?://.*:(\d+)/v1/ws$", line or "")
            if not tap.check(
                m is not None,
                "with an account, codechatd starts with the image's environment",
                f"stdout: {line}\nstderr: {log}",
            ):
                return
            health_env = dict(run_env)
            health_env["CODECHATD_LISTEN"] = f"{host}:{m.group(1)}"
            rc, out = run_healthcheck(health_cmd, health_env, health_timeout)
            tap.check(
                rc == 0,
                "the HEALTHCHECK command succeeds against the running codechatd",
                f"exit {rc}: {out}",
            )
        finally:
            status = stop_daemon(daemon)
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tap.check(
                status == 0,
                "codechatd stops cleanly on SIGTERM",
                f"exit {status}\nstderr: {f.read()}",
            )

        rc, out = run_healthcheck(health_cmd, health_env, health_timeout)
        tap.check(
            rc not in (0, None),
            "the HEALTHCHECK command fails once codechatd is stopped",
            f"exit {rc}: {out}",
        )

        server = http.server.HTTPServer(("127.0.0.1", 0), ErrorHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            health_env["CODECHATD_LISTEN"] = f"{host}:{server.server_address[1]}"
            rc, out = run_healthcheck(health_cmd, health_env, health_timeout)
        finally:
            server.shutdown()
            server.server_close()
        tap.check(
            rc not in (0, None),
            "the HEALTHCHECK command fails when /healthz answers 503",
            f"exit {rc}: {out}",
        )


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    root, version = argv[1], argv[2]
    tap = Tap()
    try:
        with open(os.path.join(root, "Containerfile"), encoding="utf-8") as f:
            stages = split_stages(parse_containerfile(f.read()))
    except (OSError, ValueError) as e:
        tap.check(False, "the Containerfile can be read and parsed", e)
        return tap.finish()
    tap.check(True, "the Containerfile can be read and parsed")
    env, cmd, health_cmd, health_timeout = static_checks(tap, root, version, stages)
    if len(argv) == 4:
        runtime_checks(tap, argv[3], env, cmd, health_cmd, health_timeout)
    return tap.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
