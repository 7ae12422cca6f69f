"""Preset `soak`: Leaks and drift. 80 users for 60 minutes (each renews its token
before it expires).

Passes with <= 1% failed requests and p95 <= 500 ms.
The numbers live in PRESETS["soak"] (_presets.py). Run it with `make load PRESET=soak`
or `locust -f locustfiles/soak.py`; -u, -r and -t scale the peak users, the spawn
rate and the run time, --mix changes the scenario weights.
"""

from scenarios import DropPromotionUser, PeakLoadUser, RaceUser, ReserveQueueUser, StudentUser  # noqa: F401

from _common import PresetShape
from _presets import PRESETS


class SoakShape(PresetShape):
    preset = PRESETS["soak"]
