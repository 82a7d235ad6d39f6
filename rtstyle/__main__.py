"""``python -m rtstyle`` (and ``torchrun -m rtstyle train ...``)."""
from rtstyle.cli import entry

entry()
