#!/usr/bin/python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Usage: check-flatpak.py FLATPAK_BUILDER MANIFEST APP_ID DBUS_NAME

Checks the Flatpak manifest offline (the GNOME runtime cannot be downloaded
here; the flatpak workflow builds it for real):

- flatpak-builder --show-manifest reads it with G_DEBUG=fatal-warnings, so
  an unknown property or a wrong type fails;
- its id is the application ID, and the exported D-Bus service name starts
  with it (flatpak exports only those, and lets the app own them without a
  --own-name);
- its command is the client and the project module is built with meson
  from this very source tree, with options meson_options.txt declares, and
  without the systemd user unit (the host's bus would ask systemd for a unit
  only the sandbox has);
- finish-args holds only what the app needs and the sandbox does not give:
  the network. Notifications go through the portal (libnotify 0.8), the
  daemon's bus name is under the app ID.
"""

import json
import os
import re
import subprocess
import sys

ALLOWED_FINISH_ARGS = {"--share=network"}

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def meson_options(source_root):
    with open(os.path.join(source_root, "meson_options.txt"), encoding="utf-8") as f:
        return set(re.findall(r"^option\('([^']+)'", f.read(), re.MULTILINE))


def main():
    if len(sys.argv) != 5:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    builder, manifest_path, app_id, dbus_name = sys.argv[1:]

    env = dict(os.environ, G_DEBUG="fatal-warnings")
    proc = subprocess.run(
        [builder, "--show-manifest", manifest_path],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr)
        print(f"flatpak-builder --show-manifest failed with {proc.returncode}")
        return 1
    check(proc.stderr.strip() == "", f"flatpak-builder warned: {proc.stderr.strip()}")
    try:
        manifest = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        print(f"flatpak-builder printed no JSON: {e}")
        return 1

    check(manifest.get("id") == app_id, f"id is {manifest.get('id')!r}, not {app_id!r}")
    check(
        dbus_name.startswith(app_id + "."),
        f"the D-Bus name {dbus_name} is not under the app ID: flatpak would not export it",
    )
    check(manifest.get("command") == "codechat", f"command is {manifest.get('command')!r}")
    check(
        manifest.get("runtime") == "org.gnome.Platform" and manifest.get("sdk") == "org.gnome.Sdk",
        "the runtime is not the GNOME one",
    )
    check(
        re.fullmatch(r"\d+", str(manifest.get("runtime-version", ""))) is not None,
        f"runtime-version {manifest.get('runtime-version')!r} is not a GNOME release",
    )

    finish_args = manifest.get("finish-args", [])
    extra = [a for a in finish_args if a not in ALLOWED_FINISH_ARGS]
    check(not extra, f"finish-args beyond what codechat needs: {extra}")
    check("--share=network" in finish_args, "finish-args lacks --share=network")

    modules = manifest.get("modules", [])
    if not check(modules, "no modules"):
        return report()
    project = modules[-1]
    check(project.get("name") == "codechat", f"the last module is {project.get('name')!r}")
    check(project.get("buildsystem") == "meson", "the project module is not built with meson")

    manifest_dir = os.path.dirname(os.path.abspath(manifest_path))
    roots = [
        os.path.normpath(os.path.join(manifest_dir, s["path"]))
        for s in project.get("sources", [])
        if s.get("type") == "dir"
    ]
    source_root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    check(roots == [source_root], f"the sources are {roots}, not the source tree {source_root}")

    known = meson_options(source_root)
    opts = {}
    for opt in project.get("config-opts", []):
        m = re.fullmatch(r"-D([A-Za-z0-9_]+)=(.*)", opt)
        if not check(m is not None, f"config-opt {opt!r} is not -Dname=value"):
            continue
        name, value = m.groups()
        opts[name] = value
        builtin = name in {"buildtype", "prefix", "libdir", "b_lto", "optimization", "werror"}
        check(name in known or builtin, f"config-opt -D{name} is not in meson_options.txt")
    check(
        opts.get("systemd_user_unit") == "false",
        "the Flatpak must be built with -Dsystemd_user_unit=false",
    )
    check(opts.get("tests") == "false", "the Flatpak must be built with -Dtests=false")

    # flatpak build-finish exports only desktop files, icons and D-Bus
    # services named after the app ID
    exported = ("share/applications/", "share/icons/", "share/dbus-1/services/")
    with open(os.path.join(source_root, "tests", "installed-files.txt"), encoding="utf-8") as f:
        installed = f.read().split()
    for path in installed:
        if path.startswith(exported):
            check(
                os.path.basename(path).startswith(app_id),
                f"{path} is not named after {app_id}: flatpak would not export it",
            )
    check(any(p.startswith("share/dbus-1/services/") for p in installed), "no D-Bus service file")
    check(f"bin/{manifest.get('command')}" in installed, "the command is not an installed program")
    return report()


def report():
    for message in failures:
        print(f"FAIL: {message}")
    if failures:
        return 1
    print("the Flatpak manifest is valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
