"""Rule criteria, one small file each; importing this package registers every one of them.

A new criterion is a new file here with a class decorated by `@criterion(name, description)`
(see `escalate.rules.registry`); nothing else changes. One that holds after a duration on a
ticket clock is a `duration_criterion(...)` call instead (see `_duration.py`, max_age.py).
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
