#!/usr/bin/env python3
"""Throwaway PostgreSQL and MariaDB servers on loopback, for tests and benchmarks.

Each server gets a fresh data folder under a temp folder, a free TCP port on 127.0.0.1,
a password-authenticated account (so DSNs carry a password, as real ones do) and is
stopped by its PID. A server that cannot start raises RuntimeError with its log: tests
fail loudly, they never skip.

    with PgServer() as pg:      pg.dsn  -> "postgresql://lh_test:<pw>@127.0.0.1:<port>/lh_test"
                                pg.sql("CREATE TABLE ...")   (psql, as the test account)
    with MariaServer() as my:   my.dsn  -> "mysql://lh_test:<pw>@127.0.0.1:<port>/lh_test"
                                my.sql("CREATE TABLE ...")   (mariadb client)

Run a command with both servers up (their DSNs in LH_TEST_PG_DSN and LH_TEST_MYSQL_DSN):

    python3 tests/dbservers.py run -- build-san/test_source_pg

The servers run as the `postgres` / `mysql` system users when started as root
(PostgreSQL refuses to run as root), else as the calling user.
"""
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"
START_TIMEOUT = 60.0


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(user):
    """argv prefix that runs a command as `user` when we are root, else nothing."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", user, "--"]


def _traversable(path):
    """Lets other users search every folder above path (o+x), as root only. The servers
    run as `postgres` / `mysql`, which must reach their binaries and our temp folder: a
    chroot or container whose root folder was made with mode 0700 (mktemp -d) would refuse
    them ("Permission denied" at exec). On an ordinary system every such folder already
    has o+x and nothing changes."""
    if os.geteuid() != 0:
        return
    d = os.path.dirname(os.path.abspath(path))
    while True:
        mode = os.stat(d).st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(d, stat.S_IMODE(mode) | stat.S_IXOTH)
        parent = os.path.dirname(d)
        if parent == d:
            return
        d = parent


def _chown(path, user):
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)


def _wait_port(port, proc, log_path, what):
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    log = open(log_path, errors="replace").read()[-4000:] if os.path.exists(log_path) else ""
    proc.kill()
    raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}:\n{log}")


def _stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PgServer:
    """PostgreSQL 15 from Debian's packages."""

    user = "lh_test"
    database = "lh_test"

    def __init__(self):
        self.password = "pg-" + secrets.token_hex(12)
        self.port = free_port()
        self.proc = None
        self.tmp = None

    def start(self):
        if not os.path.exists(os.path.join(PG_BIN, "postgres")):
            raise RuntimeError("PostgreSQL is not installed (run scripts/setup.sh)")
        self.tmp = tempfile.mkdtemp(prefix="lh-pg-")
        os.chmod(self.tmp, 0o755)
        _traversable(os.path.join(PG_BIN, "postgres"))
        _traversable(os.path.join(self.tmp, "data"))
        data, sock = os.path.join(self.tmp, "data"), os.path.join(self.tmp, "sock")
        os.mkdir(sock)
        pwfile = os.path.join(self.tmp, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        _chown(self.tmp, "postgres")
        run = _as_user("postgres")
        r = subprocess.run(run + [os.path.join(PG_BIN, "initdb"), "-D", data, "-U", self.user,
                                  "--pwfile", pwfile, "--auth-host=scram-sha-256",
                                  "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{r.stdout}\n{r.stderr}")
        os.unlink(pwfile)
        self.log = os.path.join(self.tmp, "server.log")
        logf = open(self.log, "w")
        _chown(self.log, "postgres")
        self.proc = subprocess.Popen(
            run + [os.path.join(PG_BIN, "postgres"), "-D", data, "-p", str(self.port),
                   "-k", sock, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                   "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        self.sock = sock
        _wait_port(self.port, self.proc, self.log, "PostgreSQL")
        # The port answers before the server accepts queries: wait for a real one.
        deadline = time.time() + START_TIMEOUT
        while True:
            r = subprocess.run(self._psql_argv("postgres") + ["-c", "SELECT 1"],
                               capture_output=True, text=True, env=self.env())
            if r.returncode == 0:
                break
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"PostgreSQL does not answer: {r.stderr}")
            time.sleep(0.2)
        self.sql(f"CREATE DATABASE {self.database}", db="postgres")
        return self

    @property
    def dsn(self):
        return (f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/"
                f"{self.database}")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def _psql_argv(self, db):
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", str(self.port), "-U", self.user, "-d", db]

    def env(self):
        return dict(os.environ, PGPASSWORD=self.password)

    def sql(self, text, db=None):
        """Runs SQL through psql; returns its stdout (unaligned, tuples only)."""
        r = subprocess.run(self._psql_argv(db or self.database) + ["-At", "-f", "-"],
                           input=text, capture_output=True, text=True, env=self.env())
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout

    def stop(self):
        _stop(self.proc)
        self.proc = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class MariaServer:
    """MariaDB 10.11 from Debian's packages."""

    user = "lh_test"
    database = "lh_test"

    def __init__(self):
        self.password = "my-" + secrets.token_hex(12)
        self.port = free_port()
        self.proc = None
        self.tmp = None

    def start(self):
        server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if not os.path.exists(server):
            raise RuntimeError("MariaDB is not installed (run scripts/setup.sh)")
        self.tmp = tempfile.mkdtemp(prefix="lh-my-")
        os.chmod(self.tmp, 0o755)
        _traversable(server)
        _traversable(os.path.join(self.tmp, "data"))
        data = os.path.join(self.tmp, "data")
        self.sock = os.path.join(self.tmp, "mysqld.sock")
        self.log = os.path.join(self.tmp, "server.log")
        user = "mysql" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        _chown(self.tmp, user)
        # Each instance has its own tmpdir: servers bootstrapping at once (ctest -j) must
        # not share /tmp's temporary tables.
        tmpdir = os.path.join(self.tmp, "tmp")
        os.mkdir(tmpdir)
        _chown(self.tmp, user)
        r = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}",
                            f"--user={user}", "--auth-root-authentication-method=normal",
                            "--skip-test-db", f"--tmpdir={tmpdir}"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed:\n{r.stdout}\n{r.stderr}")
        logf = open(self.log, "w")
        self.proc = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={data}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.sock}", f"--user={user}",
             f"--tmpdir={tmpdir}",
             f"--pid-file={os.path.join(self.tmp, 'mysqld.pid')}",
             "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci"],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, self.proc, self.log, "MariaDB")
        deadline = time.time() + START_TIMEOUT
        while True:
            r = subprocess.run(self._root_argv() + ["-e", "SELECT 1"], capture_output=True,
                               text=True)
            if r.returncode == 0:
                break
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"MariaDB does not answer: {r.stderr}")
            time.sleep(0.2)
        self._root_sql(
            f"CREATE DATABASE {self.database} CHARACTER SET utf8mb4;"
            f"CREATE USER '{self.user}'@'%' IDENTIFIED BY '{self.password}';"
            f"CREATE USER '{self.user}'@'localhost' IDENTIFIED BY '{self.password}';"
            f"GRANT ALL ON *.* TO '{self.user}'@'%';"
            f"GRANT ALL ON *.* TO '{self.user}'@'localhost';")
        return self

    def _root_argv(self):
        return ["mariadb", "--no-defaults", "-S", self.sock, "-u", "root"]

    def _root_sql(self, text):
        r = subprocess.run(self._root_argv(), input=text, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"mariadb failed: {r.stderr}")
        return r.stdout

    @property
    def dsn(self):
        return (f"mysql://{self.user}:{self.password}@127.0.0.1:{self.port}/"
                f"{self.database}")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def client_argv(self):
        """The mariadb client as the test account over TCP (password via the env)."""
        return ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(self.port),
                "-u", self.user, "--default-character-set=utf8mb4", self.database]

    def env(self):
        return dict(os.environ, MYSQL_PWD=self.password)

    def sql(self, text):
        """Runs SQL through the mariadb client (batch mode); returns its stdout."""
        r = subprocess.run(self.client_argv() + ["--batch", "--skip-column-names"],
                           input=text, capture_output=True, text=True, env=self.env())
        if r.returncode != 0:
            raise RuntimeError(f"mariadb failed: {r.stderr}")
        return r.stdout

    def stop(self):
        _stop(self.proc)
        self.proc = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv):
    if len(argv) < 3 or argv[1] != "run" or "--" not in argv:
        sys.stderr.write("usage: dbservers.py run -- COMMAND [ARGS...]\n")
        return 2
    cmd = argv[argv.index("--") + 1:]
    with PgServer() as pg, MariaServer() as my:
        env = dict(os.environ, LH_TEST_PG_DSN=pg.dsn, LH_TEST_MYSQL_DSN=my.dsn)
        return subprocess.run(cmd, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
