"""Student self-check and CI: the public part of the rubric, run on a student's own machine.

* ``hints``    - what to fix, in plain words, derived from the evidence and the rubric's models;
* ``result``   - a ``CheckResult`` from rubric + evidence (pure: no kernel, no files);
* ``render``   - the result as a rich table, JSON, JUnit XML and a markdown summary;
* ``run``      - collect the evidence of one submission for a check (runs the notebooks);
* ``workflow`` - the GitHub Actions workflow ``grader ci-template`` writes.
"""
