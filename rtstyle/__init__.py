"""rtstyle: real-time neural style transfer and super-resolution (Johnson et al. 2016)."""
import os

# The video pipeline runs decode, inference and encode threads side by side on few cores. OpenMP's
# default busy-waiting then steals the cores the other stages need: measured here, 2 torch threads
# ran the pipeline at 1.8 fps with busy-waiting and 20.9 fps with passive waiting. Must be set
# before torch loads its OpenMP runtime; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
