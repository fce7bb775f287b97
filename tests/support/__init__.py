"""What the tests share: builders, helpers, stand-ins and real servers the tests start.

The rule: test modules import from here, never from each other. A ``test_*.py`` module holds
tests and what only its own tests use; anything a second module needs moves here, one module
per concern (``bodies``: appeals as surfaces submit them; ``kafka``: scratch topics and reading
topics back; ``intake_app``: intake in-process; ``desk``: routing and its agent desk;
``notifications``, ``audit``: those services' pieces; ``pipeline``, ``personal_data``: driving
and searching the running pipeline; ``waiting``: polling until something happens; and so on).
Pytest fixtures stay in the ``conftest.py`` of the folder whose tests use them, built from what
is here. Besides ``__init__.py`` and ``conftest.py``, no module outside this package is anything
but a ``test_*.py`` module; ``tests/unit/test_test_layout.py`` checks both rules.
"""
