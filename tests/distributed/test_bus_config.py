"""cx.toml's [bus] table: the NATS server and credentials of cx run and cx worker, below the
URL's own credentials and the environment, and never a secret in the file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import cxlang
from cxlang.cli.bus_config import BusConfig, load_bus_config
from cxlang.runtime.distributed import BusUnavailable
from cxlang.runtime.distributed.credentials import FileCredentials, connect_options
from cxlang.services import ConfigError, load_settings

from .nats_server import NatsServer, require_binary

CX = Path(sys.executable).with_name("cx")
PASSWORD = "s3cret-pw"


def configured(tmp_path: Path, table: str, name: str = "cx.toml") -> Path:
    (tmp_path / name).write_text(table, encoding="utf-8")
    return tmp_path / name


# The file -----------------------------------------------------------------------------------

def test_paths_are_relative_to_the_file_and_the_url_is_kept(tmp_path: Path) -> None:
    path = configured(tmp_path, '[bus]\nurl = "nats://10.0.0.1:4222"\nuser = "app"\n'
                                'creds = "keys/app.creds"\nca = "/etc/ca.pem"\n')
    below = tmp_path / "src" / "deep"
    below.mkdir(parents=True)
    config = load_bus_config(below)  # found from a directory below it, as cx run finds it
    assert config == BusConfig("nats://10.0.0.1:4222", FileCredentials(
        f"{path} [bus]", creds=str(tmp_path / "keys" / "app.creds"), user="app",
        ca="/etc/ca.pem"))
    assert load_bus_config(tmp_path / "src") == config


def test_no_bus_table_is_no_bus_config(tmp_path: Path) -> None:
    configured(tmp_path, 'backend = "local"\n')
    assert load_bus_config(tmp_path) == BusConfig()


def test_the_bus_table_is_none_of_the_backend_settings(tmp_path: Path) -> None:
    configured(tmp_path, 'model = "m"\n[bus]\nuser = "app"\n')
    assert load_settings(cwd=tmp_path, env={}).model == "m"


def test_pyproject_holds_it_under_tool_cx_bus(tmp_path: Path) -> None:
    path = configured(tmp_path, '[tool.cx.bus]\nnkey = "app.nk"\n', "pyproject.toml")
    assert load_bus_config(tmp_path).credentials == FileCredentials(
        f"{path} [tool.cx.bus]", nkey=str(tmp_path / "app.nk"))


@pytest.mark.parametrize(("key", "variable"), [("password", "NATS_PASSWORD"),
                                               ("token", "NATS_TOKEN")])
def test_a_secret_in_the_file_is_refused(tmp_path: Path, key: str, variable: str) -> None:
    path = configured(tmp_path, f'[bus]\nuser = "app"\n{key} = "{PASSWORD}"\n')
    with pytest.raises(ConfigError) as refused:
        load_bus_config(tmp_path)
    assert str(refused.value) == (f"{path} [bus]: keep the {key} out of files; set the "
                                  f"{variable} environment variable instead")


@pytest.mark.parametrize("url", [f"nats://app:{PASSWORD}@h:4222", f"nats://{PASSWORD}@h:4222",
                                 f"app:{PASSWORD}@h"])
def test_a_url_with_credentials_in_the_file_is_refused_without_showing_them(
    tmp_path: Path, url: str,
) -> None:
    configured(tmp_path, f'[bus]\nurl = "{url}"\n')
    with pytest.raises(ConfigError, match=r"\[bus\]: url must not hold credentials: set user "
                       "here, and the password in NATS_PASSWORD") as refused:
        load_bus_config(tmp_path)
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize(("table", "message"), [
    ('[bus]\nservers = "x"\n', "unknown setting 'servers'; known: ca, cert, creds, key, nkey, "
                               "url, user"),
    ("[bus]\nuser = 7\n", "user must be a non-empty string, got 7"),
    ('[bus]\ncreds = ""\n', "creds must be a non-empty string, got ''"),
])
def test_a_wrong_setting_names_the_file_and_the_key(tmp_path: Path, table: str,
                                                    message: str) -> None:
    path = configured(tmp_path, table)
    with pytest.raises(ConfigError) as refused:
        load_bus_config(tmp_path)
    assert str(refused.value) == f"{path} [bus]: {message}"


def test_a_bus_that_is_no_table_is_refused(tmp_path: Path) -> None:
    path = configured(tmp_path, 'bus = "nats://h"\n')
    with pytest.raises(ConfigError, match=f"^{path}: bus must be a table"):
        load_bus_config(tmp_path)


# Precedence: the URL's own credentials, the environment, the file ----------------------------

FILE = FileCredentials("/app/cx.toml [bus]", user="from-file", nkey="/nowhere.nk")


def test_the_environment_comes_before_the_file_setting_by_setting() -> None:
    file = FileCredentials("/app/cx.toml [bus]", user="from-file")
    url = "nats://h:4222"
    assert connect_options(url, {"NATS_PASSWORD": "p"}, file) == {"user": "from-file",
                                                                  "password": "p"}
    assert connect_options(url, {"NATS_USER": "from-env"}, file) == {"user": "from-env"}
    assert connect_options(url, {}, file) == {"user": "from-file"}


def test_the_urls_own_credentials_come_before_both() -> None:
    # A user or token in the URL identifies the process alone: none is passed as an option
    # (nats-py would prefer it to the URL's). Even a missing key file is then not looked for.
    env = {"NATS_USER": "from-env", "NATS_PASSWORD": "p", "NATS_TOKEN": "t"}
    assert connect_options("nats://u:pw@h:4222", file=FILE, env=env) == {}
    assert connect_options("nats://tok@h:4222", file=FILE, env=env) == {}


def test_the_files_tls_settings_apply_under_the_urls_credentials(tmp_path: Path) -> None:
    file = FileCredentials("/app/cx.toml [bus]", ca=str(tmp_path / "missing-ca.pem"))
    with pytest.raises(BusUnavailable, match=r"cannot set up TLS for the bus from "
                       r"/app/cx.toml \[bus\] ca = '.*missing-ca.pem'"):
        connect_options("nats://u:pw@h:4222", file=file, env={})


def test_a_missing_key_file_names_where_it_was_given() -> None:
    with pytest.raises(BusUnavailable, match=r"^/app/cx.toml \[bus\] nkey = '/nowhere.nk': "
                       "no such file$"):
        connect_options("nats://h:4222", file=FILE, env={})
    with pytest.raises(BusUnavailable, match=r"^NATS_NKEY=/env.nk: no such file$"):
        connect_options("nats://h:4222", file=FILE, env={"NATS_NKEY": "/env.nk"})


# On a real server that wants a user and password ---------------------------------------------

@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[NatsServer]:
    conf = tmp_path / "server.conf"
    conf.write_text(f'authorization {{ user: app, password: "{PASSWORD}" }}\n',
                    encoding="utf-8")
    server = NatsServer(require_binary(), tmp_path / "jetstream", conf)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_the_library_takes_the_user_from_the_file_and_the_password_from_the_env(
    guarded: NatsServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NATS_PASSWORD", PASSWORD)
    monkeypatch.delenv("NATS_USER", raising=False)
    file = FileCredentials("cx.toml [bus]", user="app")
    async with cxlang.Runtime(bus=guarded.url, bus_credentials=file) as rt:
        rt.on("job.run", lambda e: "done", inline=True)
        assert await rt.publish("job.run") == ["done"]


def cx_run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    return subprocess.run([str(CX), "run", "main.cx", *args], cwd=tmp_path,
                          env={**base, **env}, capture_output=True, text=True, timeout=60,
                          check=False)


def test_cx_run_takes_the_server_and_user_from_cx_toml_and_the_password_from_the_env(
    guarded: NatsServer, tmp_path: Path,
) -> None:
    configured(tmp_path, f'[bus]\nurl = "{guarded.url}"\nuser = "app"\n')
    (tmp_path / "main.cx").write_text('on job.run (e) { print("ran"); }\nemit job.run;\n',
                                      encoding="utf-8")
    done = cx_run(tmp_path, {"NATS_PASSWORD": PASSWORD}, "--group", "apps", "--timeout", "20s")
    assert (done.returncode, done.stdout, done.stderr) == (0, "ran\n", "")
    # Without the password the server refuses, and says so; no secret is shown.
    done = cx_run(tmp_path, {}, "--group", "apps", "--timeout", "20s")
    assert done.returncode == 2
    assert "refused this process's credentials" in done.stderr, done.stderr
    assert PASSWORD not in done.stderr


def test_cx_worker_without_a_bus_anywhere_says_where_to_give_one(tmp_path: Path) -> None:
    (tmp_path / "main.cx").write_text('on job.run (e) { }\n', encoding="utf-8")
    done = subprocess.run([str(CX), "worker", "main.cx"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr == ("cx: cx worker needs --bus nats://HOST:PORT (or url in cx.toml's "
                           "[bus] table)\n")
