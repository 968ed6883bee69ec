"""Building the proxy's services from settings, and the app factory that only wires them."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from tests.helpers.proxies import proxy_settings
from tokentail.proxy import state
from tokentail.proxy.app import create_app
from tokentail.proxy.services import build_metrics, build_services
from tokentail.proxy.spans import SpanObserver


def test_services_use_the_metrics_and_clock_they_are_given():
    settings = proxy_settings("http://127.0.0.1:1/v1")
    registry = CollectorRegistry()
    metrics = build_metrics(settings, registry, {})
    services = build_services(settings, registry=registry, metrics=metrics, env={}, clock=lambda: 42.0)
    assert services.metrics is metrics and services.registry is registry
    assert services.routes.loaded_at == 42.0 and services.routes.clock() == 42.0
    # the live hub counts its drops on the same metrics: nothing to bind after the app exists
    services.hub._on_drop("live_subscriber")  # as the hub reports a dropped subscriber
    assert registry.get_sample_value("tokentail_telemetry_dropped_total", {"sink": "live_subscriber"}) == 1


def test_the_span_observer_comes_first_and_feeds_the_trace_context_hook():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    services = build_services(proxy_settings("http://127.0.0.1:1/v1"), tracer_provider=provider, env={})
    observers = services.observers.all
    assert isinstance(observers[0], SpanObserver)  # the trace id is on the record before the hub announces it
    assert observers[1:4] == [services.metrics, services.hub, services.sessions]
    (trace_hook,) = [h for h in services.hooks.all if type(h).__name__ == "TraceContext"]
    assert trace_hook._span_of == observers[0].span_of
    without = build_services(proxy_settings("http://127.0.0.1:1/v1"), env={})
    assert not any(isinstance(o, SpanObserver) for o in without.observers.all)


def test_create_app_puts_every_service_under_its_key():
    services = build_services(proxy_settings("http://127.0.0.1:1/v1", variant="blue"), env={})
    app = create_app(services)
    assert app[state.CONFIG] is services.config and app[state.CONFIG].variant == "blue"
    assert app[state.HOOKS] is services.hooks and app[state.OBSERVERS] is services.observers
    assert app[state.ROUTES] is services.routes and app[state.HUB] is services.hub
    assert app[state.INFLIGHT] == {}
