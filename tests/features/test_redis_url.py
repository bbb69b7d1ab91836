"""SLOTCAST_REDIS_URL with an ACL user and a password that needs %-encoding reaches Redis intact,
and the password is never written to the generated feature_store.yaml or shown in an error."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from features.settings import FeatureSettings, redis_connection_string

REPO = Path(__file__).resolve().parents[2]
PASSWORD = 'p@ss:w/0rd% 123"'  # every character a URL or Feast's parser could take apart, but a comma
ENCODED = "p%40ss%3Aw%2F0rd%25%20123%22"


def test_user_and_password_are_decoded_and_quoted() -> None:
    assert redis_connection_string("redis://127.0.0.1:6379/0") == "127.0.0.1:6379,db=0"
    # A bare 123456 was JSON-decoded by Feast into a number; null into no password at all.
    assert redis_connection_string("redis://:123456@h:1/2") == 'h:1,db=2,password="123456"'
    assert redis_connection_string("redis://:null@h:1") == 'h:1,password="null"'
    got = redis_connection_string(f"rediss://app%2Duser:{ENCODED}@h:1")
    assert got == 'h:1,username="app-user",password="p@ss:w/0rd% 123\\"",ssl=true'


def test_what_cannot_be_carried_is_refused_without_showing_the_password() -> None:
    with pytest.raises(ValueError, match="password holds a comma"):
        redis_connection_string("redis://u:a%2Cb@h")
    with pytest.raises(ValueError, match="expected redis://") as exc:
        redis_connection_string("http://u:topsecret@h")
    assert "topsecret" not in str(exc.value)


@pytest.mark.integration
def test_an_acl_user_with_an_awkward_password_builds_and_reads(
    redis_server: str, world_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis 6 ACL user (not `default`): before, the user name was dropped and the password sent
    %-encoded, so the build failed to authenticate (AUTH went to the default user)."""
    import redis
    from feast import FeatureStore

    from features.retrieval import FeastFeatureReader
    from features.store import REDIS_PASSWORD_VAR, build_feature_store
    from tests.features.conftest import AS_OF

    host_port = redis_server.removeprefix("redis://")
    admin = redis.Redis.from_url(redis_server)
    admin.execute_command("ACL", "SETUSER", "slotcast-app", "on", f">{PASSWORD}", "~*", "&*", "+@all")
    try:
        settings = FeatureSettings(
            state_dir=tmp_path,
            online_store="redis",
            redis_url=f"redis://slotcast-app:{ENCODED}@{host_port}/7",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_feature_store(world_dir, settings, as_of=AS_OF)
        assert FeastFeatureReader(settings).segment(2) == "engaged_viewer"
        text = settings.generated_yaml.read_text()
        assert "p@ss" not in text and ENCODED not in text and REDIS_PASSWORD_VAR in text
        # The feast CLI's way in: the generated yaml, the password from the environment.
        monkeypatch.setenv(REDIS_PASSWORD_VAR, PASSWORD.replace('"', '\\"'))
        store: Any = FeatureStore(repo_path=str(REPO / "features"), fs_yaml_file=settings.generated_yaml)
        got = store.get_online_features(features=["user_profile:segment"], entity_rows=[{"user_id": 2}])
        assert got.to_dict()["segment"] == ["engaged_viewer"]
    finally:
        admin.execute_command("ACL", "DELUSER", "slotcast-app")
        admin.close()
