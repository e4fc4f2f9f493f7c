"""The PATH of GitHub's ubuntu-24.04 runner for act jobs: a folder of links to exactly the commands that
runner_tools.txt lists, plus `sudo` and `apt-get` shims, so that a job sees what the real runner has, not
what this machine has, and a tool the job installs with `sudo apt-get install` appears on its PATH.

Standard library only: the apt shim imports this file by path, with any Python, inside a job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS_FILE = HERE / "runner_tools.txt"
# where this host's own tools live; never a venv, ~/.cargo or pyenv shims (the runner has none of those)
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
SHIMMED = ("sudo", "apt-get", "apt")
POLICY_RC = Path("/usr/sbin/policy-rc.d")  # exit 101: no service starts on install

SUDO = """\
#!/bin/sh
# act harness sudo: the steps already run as root here. Unlike the real sudo it keeps PATH, so that
# `sudo apt-get` is the harness's apt-get, which links what it installs into the job's PATH.
while [ $# -gt 0 ]; do
  case "$1" in
    -u|--user|-g|--group) echo "harness sudo: $1 is not supported" >&2; exit 1 ;;
    --) shift; break ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "harness sudo: no command" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then exec env "$@"; fi
exec /usr/bin/sudo env "PATH=$PATH" "$@"
"""

APT = """\
#!{python} -I
# act harness {name}: `install` runs the real apt-get for packages this host lacks, then links the
# commands of the packages (and of what they depend on) into this folder, the job's PATH. See runner.py.
import sys
sys.path.insert(0, {here!r})
import runner
sys.exit(runner.apt_main({bin_dir!r}, sys.argv[1:], {name!r}))
"""


def runner_tools(path: Path = TOOLS_FILE) -> list[str]:
    """The command names of the list, in order (comments and blank lines dropped)."""
    names = [line.strip() for line in path.read_text().splitlines()]
    return [n for n in names if n and not n.startswith("#")]


def make_runner_path(
    bin_dir: Path, system_path: tuple[str, ...] = SYSTEM_PATH, tools: list[str] | None = None
) -> list[str]:
    """Fill `bin_dir` with links to this host's binaries of the listed names, and the shims.

    Returns the listed names this host does not have (the runner has them; a job that needs one fails
    here for a reason that is this machine's, which act.log says)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    search = os.pathsep.join(system_path)
    missing = []
    for name in runner_tools() if tools is None else tools:
        if name in SHIMMED:
            continue
        found = shutil.which(name, path=search)
        if name == "podman" and os.geteuid() != 0:
            # not root (GitHub's runner runs as `runner`): tests/template/container's build made its storage
            # as root through sudo, and left a wrapper that runs podman that way; jobs must reach the same
            # images
            from tests.template.container.podman import work_dir

            wrapper = work_dir() / "bin" / "podman"
            found = str(wrapper) if wrapper.exists() else found
        if found:
            (bin_dir / name).symlink_to(found)
        else:
            missing.append(name)
    shims = {"sudo": SUDO}
    for name in ("apt-get", "apt"):
        shims[name] = APT.format(python=sys.executable, here=str(HERE), bin_dir=str(bin_dir), name=name)
    for name, text in shims.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return missing


# --- the apt shim -------------------------------------------------------------------------------------

VALUE_OPTIONS = {"-o", "-c", "-t", "--option", "--config-file", "--target-release", "--default-release"}


def parse_apt_args(args: list[str]) -> tuple[str | None, list[str]]:
    """(command, package names) of an apt-get command line; versions, releases and arches stripped."""
    words, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
    if not words:
        return None, []
    packages = [w.split("=")[0].split("/")[0].split(":")[0] for w in words[1:]]
    return words[0], packages


def installed_packages() -> tuple[dict[str, list[list[str]]], dict[str, str]]:
    """({installed package: its Depends + Pre-Depends as alternatives}, {virtual name: provider})."""
    fmt = "${Package}\t${db:Status-Abbrev}\t${Provides}\t${Depends}, ${Pre-Depends}\n"
    out = subprocess.run(
        ["/usr/bin/dpkg-query", "-W", "-f", fmt], check=True, capture_output=True, text=True
    ).stdout
    depends: dict[str, list[list[str]]] = {}
    provides: dict[str, str] = {}

    def name(item: str) -> str:
        return item.strip().split(" ")[0].split(":")[0]

    for line in out.splitlines():
        package, status, provided, deps = line.split("\t")
        if not status.startswith("ii"):
            continue
        depends[package] = [
            [name(alt) for alt in group.split("|") if name(alt)] for group in deps.split(",") if group.strip()
        ]
        for virtual in provided.split(","):
            if name(virtual):
                provides.setdefault(name(virtual), package)
    return depends, provides


def closure(packages: list[str], depends: dict, provides: dict) -> set[str]:
    """The packages and, recursively, the installed packages they depend on (the first alternative found)."""
    found: set[str] = set()
    todo = [provides.get(p, p) for p in packages]
    while todo:
        package = todo.pop()
        if package in found or package not in depends:
            continue
        found.add(package)
        for group in depends[package]:
            pick = next((provides.get(a, a) for a in group if provides.get(a, a) in depends), None)
            if pick:
                todo.append(pick)
    return found


def link_commands(packages: set[str], bin_dir: Path) -> list[str]:
    """Link every command the packages put in a system bin folder into `bin_dir`; the new names."""
    if not packages:
        return []
    listing = subprocess.run(
        ["/usr/bin/dpkg-query", "-L", *sorted(packages)], capture_output=True, text=True
    ).stdout
    added = []
    for line in listing.splitlines():
        path = Path(line.strip())
        if str(path.parent) not in SYSTEM_PATH or not path.is_file() or not os.access(path, os.X_OK):
            continue
        link = bin_dir / path.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(path)
            added.append(path.name)
    return sorted(added)


def apt_main(bin_dir: str, args: list[str], prog: str = "apt-get") -> int:
    command, packages = parse_apt_args(args)
    say = lambda text: print(f"harness {prog}: {text}", flush=True)  # noqa: E731
    if command == "update":
        say("update skipped (an install of a package this host lacks updates first)")
        return 0
    if command != "install" or not packages:
        say(f"only `update` and `install PKG...` are supported here, not {' '.join(args)!r}")
        return 100
    depends, provides = installed_packages()
    absent = [p for p in packages if provides.get(p, p) not in depends]
    if absent:
        if not POLICY_RC.exists():
            say(f"refusing to install {absent} without {POLICY_RC} (exit 101): a service would start")
            return 100
        say(f"installing {' '.join(absent)} on this host with the real apt-get")
        env = {
            **os.environ,
            "PATH": os.pathsep.join(SYSTEM_PATH),  # maintainer scripts need the whole system
            "DEBIAN_FRONTEND": "noninteractive",
        }
        apt = ["/usr/bin/apt-get", "-o", "DPkg::Lock::Timeout=600"]
        for step in (["update", "-qq"], args):
            proc = subprocess.run([*apt, *step], env=env)
            if proc.returncode:
                return proc.returncode
        depends, provides = installed_packages()
    else:
        say(f"already installed on this host: {' '.join(packages)}")
    added = link_commands(closure(packages, depends, provides), Path(bin_dir))
    say(f"now on PATH: {' '.join(added) if added else '(no new commands)'}")
    return 0
