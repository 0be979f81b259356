"""A project-local PostgreSQL 15 cluster, run as the `postgres` OS user when we are root."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from busymate.errors import BusymateError
from busymate.project import remember
from busymate.settings import Settings

PG_MAJOR = "15"
MARKER = "busymate.conf"
BOOTSTRAP_USER = "supabase_admin"
_CANDIDATE_BINDIRS = (Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin"), Path(f"/usr/pgsql-{PG_MAJOR}/bin"))
_MISSING_BINARIES = (
    f"PostgreSQL {PG_MAJOR} server binaries not found (initdb, pg_ctl); run `make up` to install them, "
    f"or `apt-get install postgresql-{PG_MAJOR}`, or point BUSYMATE_PG_BINDIR at their folder"
)


def find_bindir(settings: Settings) -> Path:
    """The folder that holds initdb and pg_ctl for PostgreSQL 15."""
    candidates = [settings.pg_bindir] if settings.pg_bindir else list(_CANDIDATE_BINDIRS)
    for folder in candidates:
        if folder and (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise BusymateError(_MISSING_BINARIES)


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _can_traverse(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may reach `path` through every folder above it."""
    for folder in (path, *path.parents):
        if not folder.exists():
            continue
        st = folder.stat()
        if st.st_uid == user.pw_uid:
            need = stat.S_IXUSR
        elif st.st_gid == user.pw_gid:
            need = stat.S_IXGRP
        else:
            need = stat.S_IXOTH
        if not st.st_mode & need:
            return False
    return True


@dataclass(frozen=True, kw_only=True)
class ClusterStatus:
    """What `busymate db status` reports."""

    running: bool
    pid: int | None
    port: int
    data_dir: Path


class Cluster:
    """Create, start, stop and inspect the project's cluster; idempotent in every direction."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.os_user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if os.geteuid() == 0 and self.os_user is None:  # pragma: no cover - getpwnam raises instead
            raise BusymateError("running as root needs a `postgres` OS user; install postgresql-15")

    # -- where things live -------------------------------------------------------------------------
    @property
    def link(self) -> Path:
        """The data directory's name inside the state folder (a real folder or a link to one)."""
        return self.settings.data_dir

    @property
    def data_dir(self) -> Path:
        """The real data directory the server runs on."""
        return self.link.resolve() if self.link.is_symlink() else self.link

    def _fallback_dir(self) -> Path:
        assert self.os_user is not None
        digest = hashlib.sha1(str(self.link).encode(), usedforsecurity=False).hexdigest()[:12]
        return Path(self.os_user.pw_dir) / "busymate" / digest / "data"

    # -- running binaries --------------------------------------------------------------------------
    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        bindir = find_bindir(self.settings)
        user = self.os_user
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        if user is not None:
            env["HOME"] = user.pw_dir
        proc = subprocess.run(
            [str(bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            timeout=timeout,
            check=False,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise BusymateError(
                f"{args[0]} failed: {detail[-1] if detail else 'exit ' + str(proc.returncode)}"
            )
        return proc

    # -- lifecycle ---------------------------------------------------------------------------------
    def is_initialized(self) -> bool:
        """True when the data directory holds a cluster we made."""
        return (self.data_dir / "PG_VERSION").is_file() and (self.data_dir / MARKER).is_file()

    def _check_not_foreign(self) -> None:
        data = self.data_dir
        if not data.exists() or self.is_initialized():
            return
        if (data / "PG_VERSION").is_file():
            version = (data / "PG_VERSION").read_text().strip()
            raise BusymateError(
                f"{data} holds a PostgreSQL {version} cluster that busymate did not create; "
                "move it away or set BUSYMATE_STATE_DIR to another folder"
            )
        if any(data.iterdir()):
            raise BusymateError(
                f"{data} is not empty and is not a busymate cluster; move it away or set BUSYMATE_STATE_DIR"
            )

    def _prepare_data_dir(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        if self.os_user is None:
            self.link.mkdir(mode=0o700, exist_ok=True)
            return
        target = self.link
        if not _can_traverse(self.settings.state_dir, self.os_user):
            # The checkout sits in a folder the postgres user cannot enter (a 0700 temp dir, say):
            # keep the data in postgres's home and leave a link where people look for it.
            target = self._fallback_dir()
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(target, target_is_directory=True)
            for folder in (target.parent.parent, target.parent):
                folder.mkdir(mode=0o700, exist_ok=True)
                os.chown(folder, self.os_user.pw_uid, self.os_user.pw_gid)
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(target, self.os_user.pw_uid, self.os_user.pw_gid)
        target.chmod(0o700)

    def init(self) -> bool:
        """Run initdb once; returns True when it created the cluster now."""
        self._check_not_foreign()
        if self.is_initialized():
            return False
        find_bindir(self.settings)
        self._prepare_data_dir()
        fd, pwfile = tempfile.mkstemp(prefix="busymate-pw-")
        try:
            os.write(fd, f"{self.settings.db_password}\n".encode())
            os.close(fd)
            if self.os_user is not None:
                os.chown(pwfile, self.os_user.pw_uid, self.os_user.pw_gid)
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", BOOTSTRAP_USER, f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                "--no-instructions",
            )  # fmt: skip
        finally:
            Path(pwfile).unlink(missing_ok=True)
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(f"\ninclude_if_exists = '{MARKER}'\n")
        self._write_conf()
        return True

    def _knows_setting(self, name: str) -> bool:
        """Whether this server build has a configuration parameter (an unknown one would stop it starting)."""
        described = self._run("postgres", "--describe-config", check=False, timeout=30)
        return any(line.split("\t", 1)[0] == name for line in described.stdout.splitlines())

    def _write_conf(self) -> None:
        s = self.settings
        lines = {
            "listen_addresses": f"'{s.db_host}'",
            "port": str(s.db_port),
            "unix_socket_directories": "''",
            "wal_level": "logical",
            "max_replication_slots": "20",
            "max_wal_senders": "20",
            "shared_preload_libraries": "'pg_stat_statements, pg_cron'",
            "cron.database_name": "'postgres'",
            "cron.use_background_workers": "on",
            "max_worker_processes": "32",
            "timezone": "'UTC'",
            "logging_collector": "on",
            "log_directory": "'log'",
            "log_filename": "'postgresql-%a.log'",
            "log_truncate_on_rotation": "on",
            "log_min_messages": "warning",
            "password_encryption": "'scram-sha-256'",
        }
        if not s.durable:
            lines |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
            # Logical decoding (/realtime/v1) reads only flushed WAL: with asynchronous commits the WAL
            # writer's pace is the delivery latency (200 ms by default).
            lines["wal_writer_delay"] = "5ms"
        if self._knows_setting("output_plugin_libraries"):
            # Some builds list the logical decoding plugins slots may use; /realtime/v1 reads wal2json.
            lines["output_plugin_libraries"] = "'pgoutput, test_decoding, wal2json'"
        body = "# Written by busymate on every start; edit busymate's settings instead.\n" + "".join(
            f"{key} = {value}\n" for key, value in lines.items()
        )
        path = self.data_dir / MARKER
        path.write_text(body)
        if self.os_user is not None:
            os.chown(path, self.os_user.pw_uid, self.os_user.pw_gid)

    def status(self) -> ClusterStatus:
        """Whether our server runs, and its pid."""
        pid: int | None = None
        running = False
        if self.is_initialized():
            proc = self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False)
            running = proc.returncode == 0
            pidfile = self.data_dir / "postmaster.pid"
            if running and pidfile.is_file():
                pid = int(pidfile.read_text().split("\n", 1)[0])
        return ClusterStatus(running=running, pid=pid, port=self._running_port(), data_dir=self.data_dir)

    def _running_port(self) -> int:
        pidfile = self.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, IndexError, ValueError):
            return int(pidfile.read_text().splitlines()[3])
        return self.settings.db_port

    def start(self) -> bool:
        """Start the server (initializing it first); returns False when it was already running."""
        self.init()
        current = self.status()
        if current.running:
            if current.port != self.settings.db_port:
                raise BusymateError(
                    f"the cluster already runs on port {current.port}, not {self.settings.db_port}; "
                    "run `busymate db stop` first"
                )
            return False
        if not port_is_free(self.settings.db_host, self.settings.db_port):
            raise BusymateError(
                f"port {self.settings.db_port} on {self.settings.db_host} is already in use by another "
                "program; "
                "stop it or choose another port with BUSYMATE_DB_PORT"
            )
        self._write_conf()
        proc = self._run(
            "pg_ctl", "start", "-D", str(self.data_dir), "-w", "-t", "60",
            "-l", str(self.data_dir / "startup.log"), check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise BusymateError(
                f"postgres did not start; see {self.data_dir / 'startup.log'} and {self.data_dir / 'log'}"
            )
        remember(self.settings, "db_port")  # a later shell without BUSYMATE_DB_PORT finds it again
        return True

    def stop(self) -> bool:
        """Stop the server; returns False when it was not running."""
        if not self.status().running:
            return False
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60")
        return True

    def destroy(self) -> None:
        """Stop the server and delete its data (throw-away test clusters only)."""
        if self.is_initialized():
            self.stop()
        real = self.data_dir
        if self.link.is_symlink():
            self.link.unlink()
            shutil.rmtree(real.parent, ignore_errors=True)
        else:
            shutil.rmtree(real, ignore_errors=True)
