"""Activates the smoke test's download stand-ins (``tests/standins.py``) in every Python process that starts
with ``CLIPCAM_STANDINS`` set and this folder on ``PYTHONPATH`` (notebook kernels, command-line runs)."""

import os
import sys

if os.environ.get("CLIPCAM_STANDINS"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import standins

    standins.activate()
