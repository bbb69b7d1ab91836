"""POST /admin/reload reads the catalogue again when the data directory's tables changed (a later
``features build``), in every worker: a stream scheduled since the worker started is served, prices
are the new table's, what users sent meanwhile holds. Before, a running worker served the catalogue
it started with until restarted (the new stream: 404). An unreadable table keeps the old one."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from starlette.testclient import TestClient

from features.data_model import table_path, write_table
from serving.errors import NotFoundError
from serving.runtime import SlotcastApp
from serving.schemas import CarouselRequest
from serving.settings import ServingSettings
from tests.serving.conftest import TOKEN, in_process_service

ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def _write(data: Path, tables: dict[str, pa.Table], without_stream: int | None = None) -> None:
    for name, table in tables.items():
        if without_stream is not None and name in ("streams", "stream_products"):
            table = table.filter(pc.not_equal(table["stream_id"], without_stream))
        write_table(data, name, table)


def _reload(c: TestClient) -> dict[str, object]:
    r = c.post("/admin/reload", headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _on_air(tables: dict[str, pa.Table], stream: int) -> set[int]:
    sp = tables["stream_products"]
    return set(sp.filter(pc.equal(sp["stream_id"], stream))["product_id"].to_pylist())


def _carousel(c: TestClient, user: int, stream: int) -> object:
    return c.post("/carousel", json={"user_id": user, "stream_id": stream, "k": 4})


def test_a_reload_reads_a_changed_catalogue_and_keeps_what_users_sent(
    tables: dict[str, pa.Table], bundle_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    new_stream = max(tables["streams"]["stream_id"].to_pylist())
    user = int(tables["users"]["user_id"][0].as_py())
    _write(data, tables, without_stream=new_stream)
    with in_process_service(tmp_path, SLOTCAST_MODEL_SOURCE="dir", SLOTCAST_BUNDLE_DIR=str(bundle_dir)) as c:
        r = _carousel(c, user, new_stream)
        assert r.status_code == 404, r.text  # type: ignore[attr-defined]
        assert _reload(c)["catalogue_reloaded"] is False  # nothing changed
        # A purchase sent while the older catalogue serves.
        bought = sorted(_on_air(tables, 0))[0]
        ev = {"events": [{"user_id": user, "type": "purchase", "product_id": bought, "amount": 5.0}]}
        assert c.post("/events", json=ev).status_code == 200

        _write(data, tables)  # a features build scheduled the stream
        out = _reload(c)
        assert out["catalogue_reloaded"] is True and out["catalogue_error"] is None, out
        assert out["reloaded"] is False  # the same models
        r = _carousel(c, user, new_stream)
        assert r.status_code == 200, r.text  # type: ignore[attr-defined]
        slots = [s["product_id"] for s in r.json()["slots"]]  # type: ignore[attr-defined]
        assert slots and set(slots) <= _on_air(tables, new_stream)
        held = c.get(f"/users/{user}/data", headers=ADMIN).json()
        assert bought in [p["product_id"] for p in held["recent_purchases"]], held
        assert _reload(c)["catalogue_reloaded"] is False  # read once per change

        # A products table that cannot be read: the reload says why, the old catalogue serves on.
        table_path(data, "products").write_bytes(b"not a parquet file")
        out = _reload(c)
        assert out["catalogue_reloaded"] is False, out
        assert "products" in str(out["catalogue_error"]), out
        assert _carousel(c, user, new_stream).status_code == 200  # type: ignore[attr-defined]
        assert c.get("/readyz").status_code == 200


def test_the_demo_worlds_catalogue_is_not_read_again(tmp_path: Path) -> None:
    with in_process_service(tmp_path) as c:
        out = _reload(c)
    assert out["catalogue_reloaded"] is False and out["catalogue_error"] is None, out


def test_a_reload_through_one_worker_reads_the_catalogue_in_the_others(
    tables: dict[str, pa.Table], bundle_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /admin/reload reaches one worker; the others follow its announcement within a second,
    the catalogue with the models."""
    monkeypatch.setattr("serving.reload_signal.RELOAD_CHECK_S", 0.05)
    data = tmp_path / "data"
    new_stream = max(tables["streams"]["stream_id"].to_pylist())
    _write(data, tables, without_stream=new_stream)
    settings = ServingSettings(
        state_dir=tmp_path, model_source="dir", bundle_dir=bundle_dir, feature_source="demo"
    )
    one, two = SlotcastApp.from_settings(settings), SlotcastApp.from_settings(settings)
    req = CarouselRequest(user_id=int(tables["users"]["user_id"][0].as_py()), stream_id=new_stream, k=4)
    for worker in (one, two):
        with pytest.raises(NotFoundError):
            worker.carousel(req)
    _write(data, tables)
    assert one.admin_reload().catalogue_reloaded
    deadline = time.monotonic() + 10
    while True:
        try:
            assert two.carousel(req).slots
            break
        except NotFoundError:
            assert time.monotonic() < deadline, "the other worker never read the new catalogue"
            time.sleep(0.05)
