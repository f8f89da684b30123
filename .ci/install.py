"""``python .ci/install.py ARGS``: ``pip install ARGS`` into the running interpreter's environment,
with uv when that environment has it, else with pip (the Makefile's installs).

Why uv: on a 2-core machine it built the test suite's two environments in 319 s where pip took
about 490 (176 s and 315 s; 2026-12-02, another job running at `nice 19`, which in its own
session still took a share of the cores: docs/benchmarks.md, "Measuring beside a long job"),
downloading and unpacking in parallel. It compiles bytecode as pip does:
without it every fresh process compiles torch's and transformers' sources again, which doubles
their import time where PYTHONDONTWRITEBYTECODE is set.

uv does not read pip's configuration, so what pip would use (its config files and ``PIP_*``
variables: index URLs, find-links, constraints, certificate) is handed to uv as ``UV_*`` variables,
and uv takes the best version across all indexes, as pip does. A ``UV_*`` variable already set wins.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

#: pip option -> (uv variable, separator between values; None: a single value).
PIP_TO_UV = {
    "index-url": ("UV_DEFAULT_INDEX", None),
    "extra-index-url": ("UV_EXTRA_INDEX_URL", " "),
    "find-links": ("UV_FIND_LINKS", ","),
    "constraint": ("UV_CONSTRAINT", " "),
    "cert": ("SSL_CERT_FILE", None),
}


def pip_settings() -> dict[str, str]:
    """pip's effective install options: its environment variables over an ``[install]`` section
    over ``[global]``, as pip itself ranks them."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                            capture_output=True, text=True, check=False).stdout
    rank = {"global": 0, "install": 1, ":env:": 2}
    entries: list[list[str]] = []  # [section, name, value]; a value of several lines continues
    for line in listed.splitlines():
        setting = re.match(r"([^=\s]+)\.([\w-]+)=(.*)$", line)
        if setting:
            entries.append(list(setting.groups()))
        elif entries:
            entries[-1][2] += "\n" + line
    found: dict[str, tuple[int, str]] = {}
    for section, name, value in entries:
        if section in rank and rank[section] >= found.get(name, (-1, ""))[0]:
            found[name] = (rank[section], value.strip().strip("'\""))
    return {name: value for name, (_, value) in found.items()}


def uv_environment() -> dict[str, str]:
    env = dict(os.environ)
    for name, value in pip_settings().items():
        if name in PIP_TO_UV:
            variable, separator = PIP_TO_UV[name]
            env.setdefault(variable, value if separator is None else separator.join(value.split()))
    env.setdefault("UV_INDEX_STRATEGY", "unsafe-best-match")  # pip's rule: the best version anywhere
    env.setdefault("UV_COMPILE_BYTECODE", "1")
    return env


def main(args: list[str]) -> int:
    try:
        from uv import find_uv_bin
    except ImportError:
        command, env = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"], None
    else:
        command, env = [find_uv_bin(), "pip", "install", "--quiet", "--python", sys.executable], uv_environment()
    return subprocess.run(command + args, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
