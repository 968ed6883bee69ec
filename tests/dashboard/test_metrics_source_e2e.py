"""The Overview from Debian's real Prometheus scraping real proxies, against the collector.

Simulator, two proxies (production, canary), the collector and a dashboard run as in the
browser tests (``tests.helpers.stack``); a real ``prometheus`` scrapes both proxies every
second with their ``variant`` as a target label, as deploy/prometheus.yml does. Traffic is
the real ``openai`` SDK. Requests are sent in bursts in the middle of the collector's
5-second buckets, more than one scrape interval from either edge, so both sources must put
each burst in the same bucket: the figures then agree bucket by bucket, within what
Prometheus's rate extrapolation allows, and its percentiles lie in the histogram bucket of
the observation their rank falls on (the stored spans say which).
"""

from __future__ import annotations

import bisect
import json
import math
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import free_port, wait_until
from tests.helpers.prom import PrometheusServer, prometheus_bin
from tokentail.dashboard.config import PrometheusConfig
from tokentail.dashboard.metrics_source import PrometheusSource
from tokentail.dashboard.promql import plan
from tokentail.proxy.metrics import TOKENTAIL_DURATION_BUCKETS

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

STEP = 5.0  # the 5m range's step, the collector's and Prometheus's
TTFT_MS = 170
TOKENS = 12
# Per burst: (variant, model, fails). Every fourth production request and every third canary one fail.
BURST = {
    "production": [("sim-gpt-4o", False), ("sim-llama-3-8b", False), ("sim-gpt-4o", False), ("sim-gpt-4o", True)],
    "canary": [("sim-gpt-4o-mini", False), ("sim-gpt-4o-mini", False), ("sim-gpt-4o-mini", True)],
}
CLEAN_BY = 3.6  # a burst must have ended this far into its bucket (a scrape of each source follows in it)
ROUNDS = 4
SCRAPE_SHARE = 0.25  # one 1 s scrape interval of a 5 s bucket, and a little jitter


def prometheus_config(stack) -> str:
    targets = "\n".join(
        f"      - targets: ['127.0.0.1:{stack.ports[v]}']\n        labels: {{variant: {v}}}" for v in BURST
    )
    return (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: tokentail-proxy\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
        f"    static_configs:\n{targets}\n"
    )


def clients(stack) -> dict:
    """One openai client per proxy (creating one costs half a second: reused)."""
    import openai

    return {
        v: openai.OpenAI(base_url=stack.url(v, "/v1"), api_key="sk-test-not-a-key", max_retries=0, timeout=30)
        for v in BURST
    }


def send(client, model: str, fails: bool) -> int:
    """One streamed chat completion with the openai SDK: its output tokens (0 for a failure)."""
    import openai

    headers = {"x-sim-ttft-ms": str(TTFT_MS), "x-sim-tokens": str(TOKENS), "x-sim-tps": "600"}
    if fails:
        headers["x-sim-error"] = "500"
    try:
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Say something short."}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
        usage = None
        for chunk in stream:
            usage = chunk.usage or usage
    except openai.InternalServerError:
        assert fails
        return 0
    assert not fails and usage is not None
    return usage.completion_tokens


def burst(sdk: dict, pool: ThreadPoolExecutor, which=lambda fails: True) -> None:
    """Every request of ``BURST`` (that ``which`` picks by whether it fails) at once."""
    futures = [
        pool.submit(send, sdk[v], model, fails) for v, reqs in BURST.items() for model, fails in reqs if which(fails)
    ]
    for f in futures:
        f.result(timeout=60)


def series_seen(prom) -> set[tuple[str, str, str]]:
    return {
        (s["metric"].get("variant"), s["metric"].get("model"), s["metric"].get("status_class"))
        for s in prom.query("tokentail_requests_total")
    }


def wait_phase(lo: float, hi: float) -> float:
    """Wait until the clock is ``lo``..``hi`` seconds into a 5-second bucket; the bucket's start."""
    wait_until(lambda: lo <= time.time() % STEP < hi, timeout=STEP + 1, step=0.01)
    now = time.time()
    return now - now % STEP


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    prometheus_bin()  # skip (or fail under TOKENTAIL_REQUIRE_PROMETHEUS) before starting anything
    from tests.helpers.stack import Stack

    tmp = tmp_path_factory.mktemp("promsrc")
    stack = Stack(tmp)
    prom = None
    try:
        stack.start()
        prom = PrometheusServer(tmp, config=prometheus_config(stack))
        prom.wait_ready()
        sdk = clients(stack)
        with ThreadPoolExecutor(len(BURST["production"]) + len(BURST["canary"])) as pool:
            # Warm up every series first: Prometheus's rate() cannot count the first increment
            # of a series it never saw at zero (the collector can), a documented difference.
            # A proxy counts a model's failures under "other" until the model had a 2xx: the
            # successes first, then the failures.
            burst(sdk, pool, lambda fails: not fails)
            burst(sdk, pool, lambda fails: fails)
            expected = {(v, m, "5xx" if f else "2xx") for v, reqs in BURST.items() for m, f in reqs}

            def warmed() -> bool:
                return series_seen(prom) == expected

            wait_until(warmed, timeout=20, step=0.3, what="the warm-up's series in Prometheus")
            clean: list[float] = []
            start = time.time() - time.time() % STEP  # the first round in the bucket after this one
            for _ in range(ROUNDS):
                next_bucket = start + STEP
                wait_until(lambda t=next_bucket: time.time() >= t, timeout=2 * STEP)  # one burst a bucket
                start = wait_phase(1.2, 1.6)
                burst(sdk, pool)
                if time.time() - start < CLEAN_BY:
                    clean.append(start)
        # The last burst's bucket and a quiet one after it have ended and been scraped.
        wait_until(lambda: time.time() >= start + 2 * STEP + 0.5, timeout=3 * STEP)
        yield stack, prom, clean
    finally:
        if prom is not None:
            prom.stop()
        stack.stop()


def bucket_of_rank(values: list[float], q: float) -> tuple[float, float]:
    """The bounds (ms) of the latency bucket holding the observation ``histogram_quantile``'s
    rank ``q * n`` falls on: the estimate lies in them, whatever the load did to the values
    (the histograms are read as exact increases per step: no extrapolation moves the rank)."""
    xs = sorted(values)
    x = xs[max(1, math.ceil(q * len(xs))) - 1] / 1000
    bounds = (0.0, *TOKENTAIL_DURATION_BUCKETS, math.inf)
    i = bisect.bisect_left(bounds, x)  # x is in (bounds[i - 1], bounds[i]]
    return bounds[i - 1] * 1000, min(bounds[i], TOKENTAIL_DURATION_BUCKETS[-1]) * 1000


def source(prom, **kw) -> PrometheusSource:
    return PrometheusSource(PrometheusConfig(prom.url, scrape_interval=1.0, **kw))


def by_time(resp: dict, group: str, metric: str) -> dict[float, float | None]:
    (g,) = [g for g in resp["groups"] if g["name"] == group]
    return dict(zip(resp["timestamps"], g["metrics"][metric]))


def test_prometheus_figures_agree_with_the_collectors(fleet):
    stack, prom, clean = fleet
    assert len(clean) >= 2, f"too few bursts ended inside their bucket on this machine: {clean}"
    ours = source(prom).metrics("5m", "variant")
    theirs = stack.get_json("collector", "/api/metrics?range=5m&by=variant")
    assert ours["step"] == theirs["step"] == STEP
    assert ours["quantile_source"] == {"latency": "buckets", "ttft": "buckets", "tps": "buckets"}
    assert {g["name"] for g in ours["groups"]} == {"production", "canary"}
    for variant, reqs in BURST.items():
        n, errors = len(reqs), sum(f for _, f in reqs)
        mine, collector = by_time(ours, variant, "request_rate"), by_time(theirs, variant, "request_rate")
        for t in clean:
            # Both divide the burst by the seconds their scrapes covered: STEP, give or take a
            # late scrape (a loaded machine), so the rates agree within one scrape interval.
            assert collector[t] == pytest.approx(n / STEP, rel=SCRAPE_SHARE), (variant, t)
            assert mine[t] == pytest.approx(collector[t], rel=SCRAPE_SHARE), (variant, t, mine[t], collector[t])
            assert by_time(ours, variant, "error_rate")[t] == pytest.approx(errors / n, abs=0.01)
            assert by_time(theirs, variant, "error_rate")[t] == pytest.approx(errors / n, abs=0.01)
            out_mine = by_time(ours, variant, "output_tokens_rate")[t]
            out_coll = by_time(theirs, variant, "output_tokens_rate")[t]
            assert out_coll == pytest.approx((n - errors) * TOKENS / STEP, rel=SCRAPE_SHARE)
            assert out_mine == pytest.approx(out_coll, rel=SCRAPE_SHARE)
            assert out_mine / mine[t] == pytest.approx((n - errors) * TOKENS / n, rel=0.01)  # per request
            # Percentiles: ours interpolate inside the bucket that holds the observation the
            # rank falls on, read from the requests the collector stored.
            spans = stack.get_json(
                "collector", f"/api/spans?variant={variant}&since={t}&before={t + STEP}&messages=false"
            )["spans"]
            assert len(spans) == n
            for metric, field, q in (
                ("ttft_p50_ms", "ttft_ms", 0.5),
                ("latency_p50_ms", "latency_ms", 0.5),
                ("latency_p95_ms", "latency_ms", 0.95),
            ):
                observed = [sp[field] for sp in spans if sp[field] is not None]
                lo, hi = bucket_of_rank(observed, q)
                estimate, exact = by_time(ours, variant, metric)[t], by_time(theirs, variant, metric)[t]
                assert lo <= estimate <= hi, (variant, metric, t, estimate, sorted(observed))
                assert min(observed) <= exact <= max(observed)  # the collector's, exact from the spans
        # Between bursts nothing was sent: both say 0 where both have a value.
        quiet = [t for t in ours["timestamps"] if t - STEP in clean and t not in clean]
        for t in quiet:
            assert mine[t] == pytest.approx(0, abs=0.05) and collector[t] == pytest.approx(0, abs=0.05)


def test_the_per_model_figures_agree(fleet):
    stack, prom, clean = fleet
    ours = source(prom).metrics("5m", "model")
    theirs = stack.get_json("collector", "/api/metrics?range=5m&by=model")
    models = {m for reqs in BURST.values() for m, _ in reqs}
    assert {g["name"] for g in ours["groups"]} == models == {g["name"] for g in theirs["groups"]}
    for model in models:
        mine, collector = by_time(ours, model, "request_rate"), by_time(theirs, model, "request_rate")
        for t in clean:
            assert mine[t] == pytest.approx(collector[t], rel=SCRAPE_SHARE), (model, t)
    # A filter that is no model name at all: a valid query, no data, no error.
    odd = source(prom).metrics("5m", "variant", 'x"} or vector(1) # \\ \n')
    assert all(not any(v for v in g["metrics"]["request_rate"]) for g in odd["groups"])


def test_status_counts_the_scraped_targets(fleet):
    _stack, prom, _clean = fleet
    src = source(prom)
    expected = [("canary", True, 1, 1), ("production", True, 1, 1)]

    def both_up():  # a scrape that timed out on a loaded machine reads as down until the next
        status = src.status()
        return [(v["name"], v["up"], v["targets_up"], v["targets"]) for v in status["variants"]] == expected and status

    status = wait_until(both_up, timeout=15, step=0.5, what="both proxies up in Prometheus")
    assert all(v["current"]["in_flight"] == 0 for v in status["variants"])  # the bursts are over


def test_every_range_answers_with_bounded_points(fleet):
    _stack, prom, _clean = fleet
    src = source(prom)
    for rng in ("5m", "15m", "1h", "6h", "24h", "7d"):
        resp = src.metrics(rng, "variant")
        w = plan(rng, time.time(), 1.0)
        assert resp["step"] == w.step and len(resp["timestamps"]) <= 300
        prod = next(g for g in resp["groups"] if g["name"] == "production")
        assert prod["summary"]["requests"] > 0, rng  # the bursts are in every range


def dash_overview(port: int, rng: str = "5m") -> dict:
    """The Overview's callback as the page calls it (POST /_dash-update-component): its outputs."""
    outputs = [
        ("ov-grid", "children"),
        ("ov-cards", "children"),
        ("ov-models", "children"),
        ("ov-status", "children"),
        ("ov-empty", "children"),
        ("ov-model", "options"),
    ]
    body = {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
        "outputs": [{"id": i, "property": p} for i, p in outputs],
        "inputs": [
            {"id": "ov-poll", "property": "n_intervals", "value": 1},
            {"id": "ov-range", "property": "value", "value": rng},
            {"id": "ov-model", "property": "value", "value": None},
            {"id": "url", "property": "pathname", "value": "/"},
        ],
        "changedPropIds": ["ov-poll.n_intervals"],
        "state": [{"id": "ov-model", "property": "options", "value": []}],
    }
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/_dash-update-component",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["response"]


def texts(node) -> str:
    """Every string in a Dash component tree (as JSON)."""
    return json.dumps(node)


def test_the_dashboard_process_draws_the_overview_from_prometheus(fleet):
    from tests.helpers.stack import Proc

    stack, prom, _clean = fleet
    port = free_port()
    dash = Proc(
        "dashboard-prom",
        [
            "dashboard",
            "--port",
            str(port),
            "--metrics-source",
            f"prometheus={prom.url}",  # the scrape interval read from the data
            "--proxy",
            f"production={stack.url('production')}",
        ],
        port,
        stack.tmp / "dashboard-prom.log",
    )
    dash.start()
    try:
        dash.wait()
        # Both proxies up (a scrape that timed out on a loaded machine reads as down until the next).
        res = wait_until(
            lambda: (r := dash_overview(port)) and json.dumps(r["ov-cards"]).count("tt-pill-ok") == 2 and r,
            timeout=20,
            step=1,
            what="both variant cards up",
        )
        grid = res["ov-grid"]["children"]
        graphs = [
            c["props"]["figure"]
            for card in grid
            for c in card["props"]["children"]
            if isinstance(c, dict) and c.get("type") == "Graph"
        ]
        assert len(graphs) == 8
        names = {t["name"] for g in graphs[:1] for t in g["data"]}
        assert names == {"production", "canary"}
        requests = {t["name"]: t["y"] for t in graphs[0]["data"]}
        assert max(v or 0 for v in requests["production"]) >= 0.5  # bursts of 4 in 5 s
        latency = graphs[2]
        assert any(a.get("text") == "from buckets" for a in latency["layout"].get("annotations", []))
        status = texts(res["ov-status"]["children"])
        assert "percentiles from buckets" in status and f"from Prometheus at {prom.url}" in status
        assert "1s resolution" in status and "step 5" in status
        cards = texts(res["ov-cards"]["children"])
        assert cards.count("tt-pill-ok") == 2 and "production" in cards and "canary" in cards  # both up
        options = [o["value"] for o in res["ov-model"]["options"]]
        assert options == ["sim-gpt-4o", "sim-gpt-4o-mini", "sim-llama-3-8b"]
        assert res["ov-empty"]["children"] is None
    finally:
        dash.stop()
