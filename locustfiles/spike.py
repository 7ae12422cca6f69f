"""Preset `spike`: Registration opens. 20 users for a minute, a jump to 200 at 200 per
second, two minutes there, back to 20 for the last two minutes (5 minutes in all).

Passes with <= 2% failed requests and p95 <= 2 s. Every new user logs in first, so the
jump is also a burst of bcrypt logins (reported on their own line).
The numbers live in PRESETS["spike"] (_presets.py). Run it with `make load PRESET=spike`
or `locust -f locustfiles/spike.py`; -u, -r and -t scale the peak users, the spawn
rate and the run time, --mix changes the scenario weights.
"""

from scenarios import DropPromotionUser, PeakLoadUser, RaceUser, ReserveQueueUser, StudentUser  # noqa: F401

from _common import PresetShape
from _presets import PRESETS


class SpikeShape(PresetShape):
    preset = PRESETS["spike"]
