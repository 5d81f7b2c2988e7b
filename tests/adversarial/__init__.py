"""Adversarial submissions of exercise 02: each module turns the student release into a cheating or
hostile notebook, and says what the autograder must make of it.

A module defines

    DESCRIPTION   one line
    ZERO          grade ids (test cells) that must score 0
    make(release, solution) -> notebook      release/solution: parsed notebooks (dicts), not modified
    verify(run)   optional extra assertions on the graded run (tests/test_adversarial.py: Run)

and uses the helpers in tests/adversarial/_nb.py. tests/test_adversarial.py grades every module's
submission through the real pipeline (`nbgrader autograde` with this repository's nbgrader_config.py).
"""
