"""Preset `smoke`: The CI check. 30 users of all five scenarios for 25 seconds.

Any failed request, a broken invariant or p95 over 5 s fails it (tests/ops/test_load_smoke.py).
The numbers live in PRESETS["smoke"] (_presets.py). Run it with `make load PRESET=smoke`
or `locust -f locustfiles/smoke.py`; -u, -r and -t scale the peak users, the spawn
rate and the run time, --mix changes the scenario weights.
"""

from scenarios import DropPromotionUser, PeakLoadUser, RaceUser, ReserveQueueUser, StudentUser  # noqa: F401

from _common import PresetShape
from _presets import PRESETS


class SmokeShape(PresetShape):
    preset = PRESETS["smoke"]
