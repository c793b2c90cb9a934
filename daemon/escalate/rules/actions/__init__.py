"""Rule actions, one small file each; importing this package registers every one of them.

A new action is a new file here with a class decorated by `@action(name, description)` (see
`escalate.rules.registry`); its name becomes a key under a rule's `then:`.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")
