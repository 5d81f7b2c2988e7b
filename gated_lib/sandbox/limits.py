"""The sandbox's limits, in one place, with their environment overrides.

Every limit has a default chosen so that every solution notebook of the course gets full marks with
room to spare (measured figures in docs/sandbox.md), and can be changed without editing code through
an environment variable ``GATED_SANDBOX_<NAME>`` set for the *grading* process (the student's code
cannot change it: it runs later, inside the sandbox, with a cleared environment).

    GATED_SANDBOX=off|on        off: plain kernel (no sandbox); on: sandbox even for `nbgrader validate`
    GATED_SANDBOX_BWRAP=auto|off|require
    GATED_SANDBOX_CELL_TIMEOUT  seconds one cell may run (ExecutePreprocessor.timeout)
    GATED_SANDBOX_CPU           CPU seconds for the whole kernel (RLIMIT_CPU; SIGXCPU then SIGKILL)
    GATED_SANDBOX_MEMORY        bytes of data segment + private mappings (RLIMIT_DATA), e.g. 4G
    GATED_SANDBOX_NPROC         processes/threads of the sandbox user (RLIMIT_NPROC)
    GATED_SANDBOX_FSIZE         largest file the kernel may write (RLIMIT_FSIZE)
    GATED_SANDBOX_NOFILE        open files (RLIMIT_NOFILE)
    GATED_SANDBOX_TMPFS         size of the private /tmp (bubblewrap only)
    GATED_SANDBOX_OUTPUT        bytes of output kept per cell (the rest is dropped by the grader)
    GATED_SANDBOX_PROBE         seconds a kernel has to answer after a timed-out cell before it is killed
    GATED_SANDBOX_UID           uid the kernel runs as when grading as root (default: one unused uid
                                per kernel, 100000-149999; `none` keeps root)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """'4G' -> 4294967296, '512M', '100k', '1234' (bytes)."""
    if isinstance(text, int):
        return text
    s = str(text).strip().lower().removesuffix("b").removesuffix("i")
    unit = s[-1] if s and s[-1] in _UNITS else ""
    return int(float(s[: len(s) - len(unit)]) * _UNITS[unit])


@dataclass(frozen=True)
class Limits:
    cell_timeout: int = 120              # s per cell (wall clock)
    cpu: int = 900                       # s of CPU for the whole kernel process
    memory: int = 6 << 30                # RLIMIT_DATA: torch + numpy use ~0.6 GiB here
    nproc: int = 256                     # threads count too (OpenBLAS, torch intra-op pools)
    fsize: int = 64 << 20
    nofile: int = 1024
    tmpfs: int = 256 << 20
    output: int = 1 << 20               # bytes of output kept per cell
    probe: int = 15                      # s a kernel has to answer after a timed-out cell, or it is killed
    uid: int | None = -1                 # grader is root: -1 = a fresh uid per kernel, None = stay root

    @classmethod
    def from_env(cls, env: dict | None = None) -> Limits:
        env = os.environ if env is None else env
        kw = {}
        for f in fields(cls):
            raw = env.get(f"GATED_SANDBOX_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            if f.name == "uid":
                kw["uid"] = None if raw.lower() in ("none", "off", "") else int(raw)
            elif f.name in ("memory", "fsize", "tmpfs", "output"):
                kw[f.name] = parse_size(raw)
            else:
                kw[f.name] = int(raw)
        return cls(**kw)

    def to_env(self) -> dict[str, str]:
        return {f"GATED_SANDBOX_{f.name.upper()}": ("none" if getattr(self, f.name) is None else str(getattr(self, f.name)))
                for f in fields(self)}


def mode(env: dict | None = None) -> str:
    """'auto' (default), 'on' or 'off' (GATED_SANDBOX)."""
    env = os.environ if env is None else env
    value = env.get("GATED_SANDBOX", "auto").strip().lower()
    return value if value in ("auto", "on", "off") else "auto"


def bwrap_mode(env: dict | None = None) -> str:
    env = os.environ if env is None else env
    value = env.get("GATED_SANDBOX_BWRAP", "auto").strip().lower()
    return value if value in ("auto", "off", "require") else "auto"
