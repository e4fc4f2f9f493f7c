"""Render a PR report (reports/pr/report.md + its PNGs) as a GitHub-like comment and screenshot it.

Why: the README and docs/report.md show what a reviewer sees; this keeps that picture reproducible.
Needs markdown-it-py (installed with the train extra's dependencies) and Debian's `chromium`.

    python docs/images/report/render.py report docs/images/report/comment.png [--width 940] [--open-all]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from markdown_it import MarkdownIt

CSS = """
body { font-family: -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; font-size: 14px;
       line-height: 1.5; color: #1f2328; margin: 0; padding: 16px; background: #fff; }
.comment { border: 1px solid #d1d9e0; border-radius: 6px; }
.head { background: #f6f8fa; border-bottom: 1px solid #d1d9e0; padding: 8px 16px; color: #59636e; }
.head b { color: #1f2328; }
.body { padding: 16px; }
h2 { font-size: 1.5em; border-bottom: 1px solid #d1d9e0; padding-bottom: .3em; margin: 0 0 16px; }
h3 { font-size: 1.25em; margin: 20px 0 12px; }
table { border-collapse: collapse; margin: 0 0 16px; display: block; overflow: auto; max-width: 100%; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
th { font-weight: 600; background: #f6f8fa; }
tr:nth-child(2n) td { background: #f6f8fa; }
td sub { color: #59636e; }
code { background: #eff1f3; border-radius: 6px; padding: .2em .4em; font-size: 85%; }
blockquote { margin: 0 0 16px; padding: 0 1em; color: #59636e; border-left: .25em solid #d1d9e0; }
details { margin: 0 0 8px; } summary { cursor: pointer; }
img { max-width: 100%; }
hr { border: 0; border-top: 1px solid #d1d9e0; margin: 16px 0; }
ul { padding-left: 2em; margin: 0 0 16px; }
"""


def render_html(report_dir: Path, open_all: bool) -> str:
    markdown = (report_dir / "report.md").read_text()
    if open_all:
        markdown = markdown.replace("<details>", "<details open>")
    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style></head><body>"
        "<div class='comment'><div class='head'><b>github-actions</b> bot commented</div>"
        f"<div class='body'>{body}</div></div></body></html>"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=940)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--open-all", action="store_true", help="unfold every <details> section")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "comment.html"
        for png in args.report_dir.glob("*.png"):
            shutil.copy(png, tmp)
        page.write_text(render_html(args.report_dir, args.open_all))
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={tmp}/profile",
                f"--window-size={args.width},{args.height}",
                f"--screenshot={args.png.resolve()}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"{args.png} ({args.width}x{args.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
