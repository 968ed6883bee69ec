"""Run mypy on the installed package layout.

The three processes live in top-level folders (``proxy/``, ``collector/``, ``dashboard/``)
that install as ``tokentail.proxy`` and so on (see ``pyproject.toml``); their modules use
relative imports across that boundary (``from .. import access``). mypy cannot follow a
setuptools ``package-dir`` mapping, so this lays the package out as it installs, with
symlinks in a temporary folder, and checks it there with the project's configuration.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"proxy": "proxy", "collector": "collector", "dashboard": "dashboard"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tokentail-mypy-") as tmp:
        pkg = Path(tmp) / "tokentail"
        pkg.mkdir()
        for item in (ROOT / "tokentail").iterdir():
            if item.name != "__pycache__":
                (pkg / item.name).symlink_to(item)
        for name, folder in MAPPED.items():
            (pkg / name).symlink_to(ROOT / folder)
        # The cache lives in the worktree (not the temporary folder) so a second run only
        # rechecks what changed.
        cmd = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            "-p",
            "tokentail",
        ]
        done = subprocess.run(cmd, cwd=tmp, check=False)
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
