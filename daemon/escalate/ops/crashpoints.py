"""Named crash points for fault tests: `ESCALATE_CRASHPOINT=name[:n]` kills the process with
os._exit(137) the n-th time (default first) execution reaches `hit(name)`.

Random kills rarely land in the millisecond windows that matter (after commit, before flag;
after DATA, before marking sent), so the tests aim at them by name.
"""

from __future__ import annotations

import os

_counts: dict[str, int] = {}
# read once: the fault tests set it in the environment of the process they start, and a tick passes
# a crash point per ticket (reading os.environ each time cost it a hundredth of its time)
_SPEC = os.environ.get("ESCALATE_CRASHPOINT")


def hit(name: str) -> None:
    spec = _SPEC
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os._exit(137)
