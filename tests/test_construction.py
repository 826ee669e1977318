"""Cheap construction: shared catalogs, no per-env copies, one TLS context per process."""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path

import gymnasium as gym

from trustee_env.catalog import Catalog
from trustee_env.llm.transport import sdk_http_client, ssl_context


def test_bundled_catalog_is_shared_not_copied(fake_server) -> None:
    server = fake_server()
    first = gym.make("Trustee-v0", base_url=server.base_url, model="fake-model")
    second = gym.make("Trustee-v0", base_url=server.base_url, model="fake-model")
    try:
        assert first.unwrapped.catalog is second.unwrapped.catalog is Catalog.default()
        name = Catalog.default().tools[0].name
        assert first.unwrapped.catalog.get(name) is second.unwrapped.catalog.get(name)
    finally:
        first.close()
        second.close()


def test_catalog_path_is_loaded_once_and_again_when_the_file_changes(tmp_path: Path, fake_server) -> None:
    path = tmp_path / "tools.json"
    tool = {"type": "function", "function": {"name": "ping", "description": "Ping.", "parameters": {}}}
    path.write_text(json.dumps([tool]))
    server = fake_server()
    envs = [gym.make("Trustee-v0", base_url=server.base_url, model="m", catalog=str(path)) for _ in range(2)]
    try:
        assert envs[0].unwrapped.catalog is envs[1].unwrapped.catalog
        assert [t.name for t in envs[0].unwrapped.catalog] == ["ping"]
    finally:
        for env in envs:
            env.close()
    tool["function"]["name"] = "pong"
    path.write_text(json.dumps([tool, {**tool, "function": {**tool["function"], "name": "pang"}}]))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # coarse clocks: make the edit visible
    reloaded = Catalog.shared(path)
    assert [t.name for t in reloaded] == ["pong", "pang"]
    assert Catalog.shared(str(path)) is reloaded


def test_catalog_shared_accepts_json_text_and_reports_missing_files(tmp_path: Path) -> None:
    text = json.dumps([{"name": "ping", "description": "Ping."}])
    assert [t.name for t in Catalog.shared(text)] == ["ping"]
    missing = tmp_path / "nope.json"
    try:
        Catalog.shared(missing)
    except Exception as err:  # the same error as Catalog.load
        assert str(missing) in str(err)
    else:  # pragma: no cover
        raise AssertionError("a missing catalog file must fail")


def _pool_context(client: object) -> ssl.SSLContext:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]


def test_http_clients_share_one_tls_context_that_trusts_nobody() -> None:
    a, b = sdk_http_client(32, secure=False), sdk_http_client(32, secure=False)
    assert _pool_context(a) is _pool_context(b) is ssl_context(False)
    plain = ssl_context(False)
    assert plain.cert_store_stats()["x509_ca"] == 0  # no trust store loaded for http://
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname  # an https redirect fails closed
    c, d = sdk_http_client(32), sdk_http_client(32)
    assert _pool_context(c) is _pool_context(d) is ssl_context(True)
