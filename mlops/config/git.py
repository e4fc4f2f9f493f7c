"""The one way the template runs git: stdout back as text, a failure either a clear error or None.

Callers that ask "is there such a revision, file or remote?" pass `check=False` and read None as no;
everything else fails with the command and git's own message, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mlops.config.errors import UserError

BOT = ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com")


def git(*args: str, cwd: Path | str | None = None, env: dict | None = None, check: bool = True) -> str | None:
    """Run `git ARGS` in `cwd` (default: here) with `env` over the environment; its stdout without the
    trailing newline. Leading blanks stay: `status --porcelain` starts a line with one (" M path")."""
    proc = subprocess.run(
        ["git", *args], cwd=cwd, text=True, capture_output=True, env={**os.environ, **env} if env else None
    )
    if proc.returncode == 0:
        return proc.stdout.rstrip()
    if check:
        raise UserError(f"git {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return None


def identity(cwd: Path | str | None = None) -> dict[str, str]:
    """What to add to the environment of a commit: nothing where a user is configured; on a bare CI
    runner the Actions bot, so a commit never fails for want of a name (set GIT_* variables win)."""
    if git("config", "user.email", cwd=cwd, check=False):
        return {}
    name, email = BOT
    bot = {"NAME": name, "EMAIL": email}
    return {
        f"GIT_{role}_{key}": value
        for role in ("AUTHOR", "COMMITTER")
        for key, value in bot.items()
        if f"GIT_{role}_{key}" not in os.environ
    }
