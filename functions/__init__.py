"""The Lambda handlers (one package each) and what they share (:mod:`functions.shared`).

Importing this package, which every handler module does first, turns pydantic's
plugin discovery off unless ``PYDANTIC_DISABLE_PLUGINS`` is already set: the
handlers use no pydantic plugin, and without the variable pydantic reads the
entry points of every installed distribution when it builds its first model (a
cold start pays for it). Set the variable to an empty string to have plugins loaded.
"""

import os

os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
