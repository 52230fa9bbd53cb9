"""Moved to bench/_tcp_proxy.py: the takeover benchmark cuts a leader off with it too, and bench must
not need tests/.

The tests keep importing `support.tcp_proxy`; this name is the same module object, so private
names and monkeypatching work as they did.
"""

import sys

import bench._tcp_proxy as _moved

sys.modules[__name__] = _moved
