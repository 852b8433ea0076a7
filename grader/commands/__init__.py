"""CLI commands, one module per group of commands; each registers itself on ``grader.cli.cli``."""
