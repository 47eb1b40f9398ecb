"""The project as pip and the container install it: its wheel, its runtime closure, and a
Python environment holding nothing else.

`build_wheel` builds from a copy of exactly the files the Dockerfile copies
(`BUILD_INPUTS`), with the setuptools of this venv, so no network is needed.
`requirement_closure` follows Requires-Dist through the installed distributions' metadata
as pip would resolve them (markers evaluated, extras only when asked for).
`runtime_environment` lays out a site directory with the unpacked wheel plus symlinks to
the files of the given distributions; `python -S` with `isolated_env(site)` then sees no
other installed package.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

__all__ = [
    "BUILD_INPUTS",
    "ROOT",
    "build_wheel",
    "isolated_env",
    "requirement_closure",
    "runtime_environment",
    "wheel_distribution",
]

ROOT = Path(__file__).resolve().parent.parent
# What building the project needs; the Dockerfile's build stage copies the same.
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "proxy", "harness")


def build_wheel(directory: Path) -> Path:
    """Build the project's wheel from a copy of BUILD_INPUTS; returns the wheel's path."""
    source, out = directory / "source", directory / "dist"
    source.mkdir(parents=True)
    out.mkdir()
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, setuptools.build_meta as backend; print(backend.build_wheel(sys.argv[1]))",
            str(out),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / result.stdout.strip().splitlines()[-1]


def wheel_distribution(wheel: Path, site: Path) -> importlib.metadata.Distribution:
    """Unpack `wheel` into `site` (what pip does for a pure-Python wheel) and return it."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    (info,) = site.glob("*.dist-info")
    return importlib.metadata.PathDistribution(info)


def requirement_closure(
    requirements: Iterable[str],
    provided: dict[NormalizedName, importlib.metadata.Distribution] | None = None,
) -> dict[NormalizedName, importlib.metadata.Distribution]:
    """Every distribution that installing `requirements` brings, by normalized name.

    Read from the metadata of what is installed in this venv (`provided` overrides, e.g. the
    freshly built wheel for the project itself). Markers are evaluated for this Python; a
    dependency's extras are followed only where a requirement names them.
    """
    overrides = provided or {}
    found: dict[NormalizedName, importlib.metadata.Distribution] = {}
    followed: set[tuple[NormalizedName, str]] = set()
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name not in found:
            found[name] = overrides.get(name) or importlib.metadata.distribution(name)
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) in followed:
                continue
            followed.add((name, extra))
            for text in found[name].requires or ():
                dependency = Requirement(text)
                if dependency.marker is None or dependency.marker.evaluate({"extra": extra}):
                    pending.append(dependency)
    return found


def runtime_environment(
    site: Path, distributions: Iterable[importlib.metadata.Distribution]
) -> Path:
    """Make `site` hold these installed distributions' files (as symlinks); returns `site`."""
    site.mkdir(parents=True, exist_ok=True)
    for dist in distributions:
        base = Path(str(dist.locate_file("")))
        if base == site:
            continue  # the unpacked wheel is already there
        tops = {Path(str(f)).parts[0] for f in dist.files or ()}
        for top in tops - {"..", "__pycache__"}:
            target = site / top
            if not target.exists() and (base / top).exists():
                target.symlink_to(base / top)
    return site


def isolated_env(site: Path, **extra: str) -> dict[str, str]:
    """The environment for `python -S ...` to see only `site` and the standard library.

    (-S skips site-packages and their .pth files; PYTHONPATH adds `site`.)
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "OPENAI_", "LOG_LEVEL", "VIRTUAL_ENV"))
    }
    # PYTHONSAFEPATH: the working directory (this checkout) is not importable either.
    env.update(PYTHONPATH=str(site), PYTHONSAFEPATH="1", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env
