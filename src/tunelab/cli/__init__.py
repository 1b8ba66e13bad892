"""The `tunelab` command line: one module per verb group, each adding its sub-commands."""
