"""grader: autograding for deep-learning homework notebooks."""

__version__ = "0.1.0"
