"""The livestream world simulator behind ``slotcast data generate`` (docs/simulator.md).

``generate(SimConfig(...), out)`` writes every canonical table plus ``out/truth/``;
``TrueWorld.load(out)`` answers what the logs were drawn from.
"""

from pipelines.simulator.config import SimConfig
from pipelines.simulator.generate import GenerateResult, generate
from pipelines.simulator.truth import TrueWorld

__all__ = ["GenerateResult", "SimConfig", "TrueWorld", "generate"]
