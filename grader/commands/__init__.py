"""CLI commands, one module per group of commands; ``grader.cli`` lists them; shared pieces in ``common``."""
