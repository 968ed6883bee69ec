"""redis_url: --live-redis URLs checked when resolved, shown without credentials."""

from __future__ import annotations

import pytest

from tokentail.redis_url import display_redis_url, redis_url


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "rediss://user:pw@redis.example:6380", "redis://redis", "unix:///run/redis.sock"],
)
def test_accepted(url):
    assert redis_url(f"  {url} ") == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:6379", "expected redis://"),
        ("127.0.0.1:6379", "expected redis://"),
        ("redis://:pw@127.0.0.1:99999", "(?i)port"),
        ("redis://", "no host"),
        ("unix://", "needs a path"),
    ],
)
def test_refused_with_a_message_that_never_shows_the_password(url, says):
    with pytest.raises(ValueError, match=says) as info:
        redis_url(url)
    assert "pw" not in str(info.value)


def test_display_drops_user_password_and_query():
    assert display_redis_url("redis://u:s3cret@host:6379/2?x=1") == "redis://host:6379/2"
    assert display_redis_url("redis://[::1]:6379") == "redis://[::1]:6379"
    assert display_redis_url("redis://h:notaport") == "<invalid url>"


def test_proxy_and_collector_options_take_it_from_flag_or_environment_masked():
    from tokentail.collector import command as collector_command
    from tokentail.proxy import command as proxy_command
    from tokentail.settings import SettingsError, resolve

    url = "redis://:hunter2pw@127.0.0.1:6379/0"
    s = resolve("proxy", proxy_command.OPTIONS, {"live_redis": url}, env={}, file_config={})
    assert s.live_redis == url and s.live_redis_maxlen == 100_000
    assert "hunter2pw" not in repr(s)
    env = {"TOKENTAIL_COLLECTOR_LIVE_REDIS": url, "TOKENTAIL_COLLECTOR_LIVE_REPLAY": "50"}
    c = resolve("collector", collector_command.OPTIONS, {}, env=env, file_config={})
    assert (c.live_redis, c.live_replay, c.live_max_subscribers) == (url, 50, 64)
    with pytest.raises(SettingsError, match="--live-redis") as info:
        resolve("proxy", proxy_command.OPTIONS, {"live_redis": "http://:hunter2pw@h:1"}, env={}, file_config={})
    assert "hunter2pw" not in str(info.value)
    assert resolve("proxy", proxy_command.OPTIONS, {}, env={}, file_config={}).live_redis is None
