"""Worker auth: `webtv worker` takes a bearer token or a user/password from its environment
(never its command line), and the channel reaches it with per-URL credentials whose secrets
come from environment variables named in [workers]. Two real Gradio workers, one of each."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.daemon import REPO
from tests.worker_harness import QUIET_ENV, WorkerProcess
from webtv.config import ConfigError, RemoteAudioSection, WorkersSection, parse_config
from webtv.director import Sequence, Shot
from webtv.producer.remote import RemoteAudio, WorkerPool

TOKEN = "tok-3f9a-not-for-logs"
PASSWORD = "pw-77c1-not-for-logs"
SEQUENCE = Sequence(id="s1", theme="storms", music_prompt="calm piano, slow", seed=3,
                    shots=(Shot(prompt="a lighthouse", seed=7, theme="storms"),))


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """A worker that wants a bearer token and one that wants a login, started together."""
    folder = tmp_path_factory.mktemp("auth")
    token = WorkerProcess(folder / "token", env={"WEBTV_WORKER_TOKEN": TOKEN})
    login = WorkerProcess(folder / "login", env={"WEBTV_WORKER_USER": "ops", "WEBTV_WORKER_PASSWORD": PASSWORD})
    try:
        for worker in (token.start(), login.start()):
            worker.wait_ready()
        yield {"token": token, "login": login}
    finally:
        token.kill()
        login.kill()


def pool(url: str, env: dict[str, str], **credentials) -> WorkerPool:
    section = WorkersSection(urls=[url], timeout_s=30, retries=0, health_interval_s=0.5, probe_after_s=1.0,
                             credentials=[{"url": url, **credentials}] if credentials else [])
    return WorkerPool(section, start=False, environ=env)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.parametrize("kind, credentials, env", [
    ("token", {"token_env": "W_TOKEN"}, {"W_TOKEN": TOKEN}),
    ("token", {"headers_env": {"Authorization": "W_HEADER"}}, {"W_HEADER": f"bearer {TOKEN}"}),
    ("login", {"user_env": "W_USER", "password_env": "W_PASSWORD"}, {"W_USER": "ops", "W_PASSWORD": PASSWORD}),
])
def test_credentials_from_the_environment_run_a_job(workers, kind, credentials, env):
    worker = workers[kind]
    assert http_status(worker.url + "config") == 401  # the app itself is closed
    remote = pool(worker.url, env, **credentials)
    try:
        music = RemoteAudio(remote, RemoteAudioSection()).compose(SEQUENCE, 1.0, 48000, 2)  # upload-free job + download
        [status] = remote.check()
        assert status["state"] == "healthy" and status["jobs_done"] == 1
    finally:
        remote.close()
    assert music.shape == (48000, 2) and np.abs(music).max() > 0


@pytest.mark.parametrize("kind, credentials, env", [
    ("token", {}, {}),
    ("token", {"token_env": "W_TOKEN"}, {"W_TOKEN": "wrong"}),
    ("login", {"user_env": "W_USER", "password_env": "W_PASSWORD"}, {"W_USER": "ops", "W_PASSWORD": "wrong"}),
])
def test_a_worker_refuses_missing_or_wrong_credentials(workers, kind, credentials, env):
    remote = pool(workers[kind].url, env, **credentials)
    try:
        [status] = remote.check()
    finally:
        remote.close()
    assert status["state"] == "down"
    assert "credentials were not provided" in status["last_error"] or "Could not login" in status["last_error"], status


def test_secrets_are_neither_on_the_command_line_nor_in_the_log(workers):
    for worker in workers.values():
        cmdline = Path(f"/proc/{worker.proc.pid}/cmdline").read_bytes().decode()
        log = worker.log_tail(100_000)
        assert TOKEN not in cmdline and PASSWORD not in cmdline
        assert TOKEN not in log and PASSWORD not in log
    assert "auth: bearer token (WEBTV_WORKER_TOKEN)" in workers["token"].log_tail()
    assert "auth: login as 'ops' (WEBTV_WORKER_USER, WEBTV_WORKER_PASSWORD)" in workers["login"].log_tail()


def test_worker_auth_half_set_or_both_exits_2_naming_the_variables(tmp_path):
    (tmp_path / "w.toml").write_text("")
    for env, expected in [({"WEBTV_WORKER_USER": "ops"}, "WEBTV_WORKER_PASSWORD is not set"),
                          ({"WEBTV_WORKER_TOKEN": "t", "WEBTV_WORKER_USER": "u", "WEBTV_WORKER_PASSWORD": "p"},
                           "set WEBTV_WORKER_TOKEN or WEBTV_WORKER_USER/WEBTV_WORKER_PASSWORD, not both")]:
        done = subprocess.run([sys.executable, "-m", "webtv", "worker", "--config", str(tmp_path / "w.toml"),
                               "--port", "1"], cwd=REPO, capture_output=True, text=True, timeout=60,
                              env={**os.environ, **QUIET_ENV, **env})
        assert done.returncode == 2 and expected in done.stderr, done.stderr


@pytest.mark.fast
def test_credentials_config_names_the_key_and_line():
    def problems(text: str, env: dict[str, str]) -> str:
        with pytest.raises(ConfigError) as caught:
            parse_config(text, Path("c.toml"), env)
        return str(caught.value)

    head = '[workers]\nurls = ["http://gpu1:7860/"]\n\n[[workers.credentials]]\nurl = "http://gpu1:7860/"\n'
    assert "c.toml:6: workers.credentials[0].token_env: environment variable GPU1_TOKEN is not set" in \
        problems(head + 'token_env = "GPU1_TOKEN"\n', {})
    assert "c.toml:6: workers.credentials[0].user_env: needs password_env too" in \
        problems(head + 'user_env = "U"\n', {"U": "x"})
    assert "c.toml:5: workers.credentials[0].url: not one of workers.urls" in \
        problems(head.replace('url = "http://gpu1', 'url = "http://gpu2') + 'token_env = "T"\n', {"T": "x"})
    assert "workers.credentials[0].token_env" in problems(head + 'token_env = "not a name"\n', {})
    config = parse_config(head + 'token_env = "T"\n', Path("c.toml"), {"T": TOKEN})
    assert TOKEN not in config.model_dump_json()  # the config holds the variable's name only
    assert config.workers.credentials_for("http://gpu1:7860").token_env == "T"
