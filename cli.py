"""Run rtstyle from a checkout without installing it: ``python cli.py --help``."""
from rtstyle.cli import entry

if __name__ == "__main__":
    entry()
