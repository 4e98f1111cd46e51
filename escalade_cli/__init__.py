"""The `escalade` command line: the only code that builds Settings from the environment."""
