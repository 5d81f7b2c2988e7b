"""Flood the outputs: 64 MiB on stdout, a long stderr, a huge display: the grader keeps 1 MiB a cell,
and still sees that a cell wrote to stderr."""

from tests.adversarial._nb import PART_A_TESTS, add_code_after, part_a_correct

DESCRIPTION = "output flood"
ZERO = ()


def make(release, solution):
    nb = part_a_correct(release, solution)
    add_code_after(nb, "setup", '''
import sys
chunk = "y" * (1 << 20)
for _ in range(64):
    print(chunk)
sys.stderr.write("e" * (4 << 20))
''')
    return nb


def verify(run):
    for gid in PART_A_TESTS:
        assert run.grade.cells[gid][0] == run.grade.cells[gid][1], gid
    size = len(run.outputs())
    assert size < 4 << 20, f"{size} bytes of output kept"
    assert "output beyond" in run.outputs()
    flood = next(c for c in run.notebook["cells"] if "chunk" in "".join(c["source"]))
    assert any(o.get("name") == "stderr" for o in flood["outputs"]), "the stderr output was dropped"
