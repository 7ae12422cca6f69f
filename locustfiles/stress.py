"""Preset `stress`: Find the limit. Five equal steps of 60 users, three minutes each,
up to 300 users (15 minutes).

Passes with <= 5% failed requests and p95 <= 2 s: read the step where latency bends.
The numbers live in PRESETS["stress"] (_presets.py). Run it with `make load PRESET=stress`
or `locust -f locustfiles/stress.py`; -u, -r and -t scale the peak users, the spawn
rate and the run time, --mix changes the scenario weights.
"""

from scenarios import DropPromotionUser, PeakLoadUser, RaceUser, ReserveQueueUser, StudentUser  # noqa: F401

from _common import PresetShape
from _presets import PRESETS


class StressShape(PresetShape):
    preset = PRESETS["stress"]
