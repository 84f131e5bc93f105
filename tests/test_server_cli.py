"""Options of the embedding server handed to its worker processes."""
import json
import os
from pathlib import Path

from orangecontrib.imageanalytics.server import cli

KEY = "s3cret-key-123"


def test_worker_options_do_not_contain_the_api_key():
    for argv in (["--api-key", KEY], [f"--api-key={KEY}"], ["--api-k", KEY]):
        args = cli.build_parser().parse_args(
            ["--workers", "4", "--models", "inception-v3,vgg16",
             "--weights-dir", "/w", *argv])
        assert args.api_key == KEY
        options = cli.worker_options(args)
        assert KEY not in options
        assert "api_key" not in json.loads(options)


def test_workers_get_the_same_options_and_the_key_from_the_environment(
        monkeypatch):
    args = cli.build_parser().parse_args(
        ["--workers", "4", "--models", "inception-v3,vgg16", "--port", "9",
         "--weights-dir", "/w", "--models-file", "m.toml",
         "--no-channels-last", "--api-key", KEY])
    monkeypatch.setenv(cli.API_KEY_ENV, KEY)
    restored = cli.args_from_worker_options(cli.worker_options(args))
    assert restored.api_key is None
    assert restored.models == ("inception-v3", "vgg16")
    assert restored.weights_dir == Path("/w")
    assert restored.models_file == Path("m.toml")
    config = cli.config_from_args(restored)
    assert config == cli.config_from_args(args)
    assert config.api_key == KEY


def test_main_passes_the_key_to_workers_in_the_environment(monkeypatch,
                                                            caplog):
    import uvicorn

    import orangecontrib.imageanalytics.server.app as app_module

    calls = []
    monkeypatch.setattr(uvicorn, "run",
                        lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setattr(app_module, "create_app", lambda config: object())
    # main sets both; setenv first so that they are removed afterwards
    for name in (cli.API_KEY_ENV, cli._WORKER_ENV):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    with caplog.at_level("DEBUG"):
        assert cli.main(["--workers", "2", "--api-key", KEY,
                         "--host", "0.0.0.0"]) == 0
    assert os.environ[cli.API_KEY_ENV] == KEY
    assert KEY not in os.environ[cli._WORKER_ENV]
    assert KEY not in repr(calls)
    assert KEY not in caplog.text
