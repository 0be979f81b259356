"""The managed cluster: idempotent in both directions, and one clear line for each way it can go wrong."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from busymate.errors import BusymateError
from busymate.stack.postgres import Cluster, free_port
from tests.conftest import base_settings, start_cluster


def test_start_and_stop_are_idempotent(tmp_path: Path) -> None:
    cluster, settings = start_cluster(tmp_path / ".busymate")
    try:
        assert cluster.start() is False, "a second start must notice the server is already up"
        status = cluster.status()
        assert status.running
        assert status.port == settings.db_port
        assert status.pid is not None
        assert cluster.stop() is True
        assert cluster.stop() is False, "stopping a stopped cluster is fine"
        assert not cluster.status().running
        assert cluster.start() is True, "the same data directory starts again"
    finally:
        cluster.destroy()
    assert not (tmp_path / ".busymate" / "postgres").exists()


def test_a_busy_port_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        settings = base_settings(tmp_path / ".busymate").with_overrides(db_port=port)
        cluster = Cluster(settings)
        try:
            with pytest.raises(BusymateError, match=f"port {port} .* already in use .* BUSYMATE_DB_PORT"):
                cluster.start()
            assert not cluster.status().running
        finally:
            cluster.destroy()


def test_a_foreign_data_directory_is_refused(tmp_path: Path) -> None:
    settings = base_settings(tmp_path / ".busymate")
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "PG_VERSION").write_text("14\n")
    with pytest.raises(BusymateError, match="PostgreSQL 14 cluster that busymate did not create"):
        Cluster(settings).start()
    (settings.data_dir / "PG_VERSION").unlink()
    (settings.data_dir / "notes.txt").write_text("mine")
    with pytest.raises(BusymateError, match="not empty and is not a busymate cluster"):
        Cluster(settings).start()
    assert (settings.data_dir / "notes.txt").read_text() == "mine", "nothing of the user's was touched"


def test_missing_binaries_say_how_to_install_them(tmp_path: Path) -> None:
    settings = base_settings(tmp_path / ".busymate").with_overrides(pg_bindir=tmp_path / "nowhere")
    with pytest.raises(BusymateError, match=r"make up.*apt-get install postgresql-15"):
        Cluster(settings).start()
    assert not settings.data_dir.exists()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
