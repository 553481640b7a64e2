"""Hypothesis settings profiles for the whole suite.

``ci`` keeps the property and fuzz tests within the CI budget on a 2-core box (no
deadline: a shared runner's timing noise is not a bug; no example database: CI starts
from a fresh clone). ``dev`` searches harder and keeps failing examples in
``.hypothesis/`` so a local failure replays first.

Chosen by ``FLOWCAP_HYPOTHESIS_PROFILE`` (``ci``/``dev``), else ``ci`` when the ``CI``
environment variable is set, else ``dev``. A test's own ``@settings`` still wins for
what it sets.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=200,
    deadline=None,
    print_blob=True,
)


def _profile_name() -> str:
    chosen = os.environ.get("FLOWCAP_HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    return "ci" if os.environ.get("CI") else "dev"


settings.load_profile(_profile_name())
