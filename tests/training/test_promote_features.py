"""A challenger trained on Feast features, compared without them (`promote --no-features`): one
clear PromotionError naming the features and the option, not the ranker's FeatureMismatchError
(exit 2, "the feature frame lacks ...") from deep in the scoring; --force promotes without a
comparison, as it does when the champion lacks them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import FirstChampion, OneFeature
from training.promote import PromotionError, promote
from training.registry import CHAMPION, version_by_alias
from training.run import train

pytestmark = pytest.mark.slow


def test_a_challenger_needing_features_the_comparison_lacks(
    world: Path, first_champion: FirstChampion
) -> None:
    s, client = first_champion.settings, first_champion.client
    assert first_champion.promotion.promoted
    with_features = train(world, s, reader=OneFeature())

    with pytest.raises(
        PromotionError, match=r"challenger v2 needs features .*\['user_bucket'\].*--no-features"
    ):
        promote(s, world, open_reader=None)
    assert str(version_by_alias(client, "slotcast", CHAMPION).version) == "1"

    forced = promote(s, world, open_reader=None, force=True)
    assert forced.promoted and forced.result.reason.startswith("forced without a comparison")
    assert str(version_by_alias(client, "slotcast", CHAMPION).version) == with_features.version
