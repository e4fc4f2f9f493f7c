"""Create the overlay venv of the setup-python stand-in: see action.yml."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

target = Path(sys.argv[1])
shared_bin = Path(sys.executable).parent
shared_site = sysconfig.get_paths()["purelib"]
subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(target)], check=True)
python = target / "bin" / "python"
site = subprocess.run(
    [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
    check=True,
    text=True,
    capture_output=True,
).stdout.strip()
# Appended (not addsitedir): the shared venv's .pth files, e.g. its editable install of the project, stay out.
Path(site, "zz_shared_venv.pth").write_text(f"import sys; sys.path.append({shared_site!r})\n")
for (
    script
) in shared_bin.iterdir():  # console scripts (dvc, pytest, pip, ...) re-pointed at the overlay python
    if script.name.startswith(("python", "activate", "Activate")) or not script.is_file():
        continue
    head = script.read_bytes()[:200]
    if head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]:
        body = script.read_text().split("\n", 1)[1]
        dest = target / "bin" / script.name
        dest.write_text(f"#!{python}\n{body}")
        dest.chmod(0o755)
    elif not (target / "bin" / script.name).exists():  # binaries such as act, actionlint
        (target / "bin" / script.name).symlink_to(script)
with open(os.environ["GITHUB_PATH"], "a") as fh:
    fh.write(f"{target / 'bin'}\n")
with open(os.environ["GITHUB_OUTPUT"], "a") as fh:
    fh.write(f"python-version={sys.version.split()[0]}\n")
print(f"setup-python stand-in: overlay venv {target} over {shared_site}")
