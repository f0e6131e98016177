"""The Lambda handlers (one package each) and what they share (:mod:`functions.shared`).

Importing this package, which every handler module does first, prepares two things
a cold start would otherwise pay for without using them:

* pydantic's plugin discovery is off unless ``PYDANTIC_DISABLE_PLUGINS`` is already
  set: the handlers use no pydantic plugin, and without the variable pydantic reads
  the entry points of every installed distribution when it builds its first model.
  Set the variable to an empty string to have plugins loaded.
* Powertools' ``event_handler`` and ``utilities.data_classes`` packages import a
  submodule only when a name of it is used (:mod:`functions.lazy_packages`), not
  every resolver and every event source's data classes at once.
"""

import os

from functions.lazy_packages import defer_package_init

os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
defer_package_init("aws_lambda_powertools.event_handler")
defer_package_init("aws_lambda_powertools.utilities.data_classes")
