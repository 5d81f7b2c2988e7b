"""Delete every test cell."""

from tests.adversarial._nb import ALL_TESTS, grade_id, with_wrong_answers

DESCRIPTION = "delete the test cells"
ZERO = ALL_TESTS


def make(release, solution):
    nb = with_wrong_answers(release)
    nb["cells"] = [c for c in nb["cells"] if grade_id(c) not in ALL_TESTS]
    return nb
