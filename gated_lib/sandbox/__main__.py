"""`python -m gated_lib.sandbox`: what the sandbox would do on this machine."""

import os

from gated_lib.sandbox import Limits, bwrap_works, ensure_kernelspec
from gated_lib.sandbox.kernelspec import kernel_dir
from gated_lib.sandbox.limits import bwrap_mode, mode

ok, why = bwrap_works()
print(f"mode: GATED_SANDBOX={mode()}, GATED_SANDBOX_BWRAP={bwrap_mode()}")
print(f"bubblewrap: {'usable' if ok else 'not usable: ' + why}")
print(f"runs as: {'uid ' + str(Limits.from_env().uid) if os.getuid() == 0 else 'the grader (not root)'}")
print(f"limits: {Limits.from_env()}")
print(f"kernelspec: {ensure_kernelspec()} in {kernel_dir()}")
