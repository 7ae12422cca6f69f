"""Preset `load`: The expected rush. Ramp to 100 users at 10 per second and hold
them for 10 minutes.

Passes with <= 1% failed requests and p95 <= 500 ms on every endpoint but login.
The numbers live in PRESETS["load"] (_presets.py). Run it with `make load PRESET=load`
or `locust -f locustfiles/load.py`; -u, -r and -t scale the peak users, the spawn
rate and the run time, --mix changes the scenario weights.
"""

from scenarios import DropPromotionUser, PeakLoadUser, RaceUser, ReserveQueueUser, StudentUser  # noqa: F401

from _common import PresetShape
from _presets import PRESETS


class LoadShape(PresetShape):
    preset = PRESETS["load"]
