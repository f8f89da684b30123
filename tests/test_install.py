"""``.ci/install.py``, through which the Makefile installs: pip's configuration reaches uv."""

from __future__ import annotations

import importlib.util
import subprocess

from curio.config import ROOT

spec = importlib.util.spec_from_file_location("ci_install", ROOT / ".ci" / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)


def test_pip_settings_reach_uv_with_pips_precedence(monkeypatch):
    listed = ("global.index-url='https://mirror/simple'\n"
              "global.extra-index-url='file:///a/simple\nfile:///b/simple'\n"  # a value of two lines
              "global.find-links='/global/wheels'\n"
              "install.find-links='/install/wheels'\n"
              ":env:.constraint='/env/constraints.txt'\n"
              "global.constraint='/global/constraints.txt'\n"
              "global.timeout='60'\n")
    monkeypatch.setattr(install.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=listed, stderr=""))
    for variable in ("UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_CONSTRAINT", "UV_INDEX_STRATEGY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("UV_COMPILE_BYTECODE", "0")  # a UV_* variable already set wins
    env = install.uv_environment()
    assert env["UV_DEFAULT_INDEX"] == "https://mirror/simple"
    assert env["UV_EXTRA_INDEX_URL"] == "file:///a/simple file:///b/simple"
    assert env["UV_FIND_LINKS"] == "/install/wheels"  # [install] over [global]
    assert env["UV_CONSTRAINT"] == "/env/constraints.txt"  # PIP_* variables over both
    assert env["UV_INDEX_STRATEGY"] == "unsafe-best-match" and env["UV_COMPILE_BYTECODE"] == "0"
