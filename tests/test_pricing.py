"""The price table: packaged data, model matching, cost math with cached tokens, unknown prices."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from tokentail.pricing import DEFAULT_PATH, Price, PriceTable, PricingError


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def test_packaged_table_is_sourced_dated_and_warns_that_prices_change(table):
    head = DEFAULT_PATH.read_text().splitlines()[:6]
    assert any("PRICES CHANGE" in line for line in head)
    for vendor in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "o3",
        "o4-mini",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-opus-4-1",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "mistral-large",
        "mistral-small",
        "deepseek-chat",
        "deepseek-reasoner",
    ):
        assert table.price_for(vendor) is not None, vendor
    for p in table.models():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.date), p
        assert p.source.startswith("https://") or p.source == "demo price for the simulator", p
        assert p.output >= 0 and p.input > 0
        assert p.cached_input is None or p.cached_input <= p.input, p
        if p.model.startswith("sim-"):
            assert p.source == "demo price for the simulator"


@pytest.mark.parametrize(
    "name,entry",
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),  # the longest name wins
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o3-mini", "o3-mini"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),  # an alias
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-sonnet-4@20250514", "claude-sonnet-4"),  # Vertex
        ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),  # Bedrock
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("mistral-large-latest", "mistral-large"),
        ("mistral-small-2503", "mistral-small"),
        ("sim-embed", "sim-text-embedding-3-small"),
    ],
)
def test_model_names_find_their_entry(table, name, entry):
    assert table.price_for(name).model == entry


@pytest.mark.parametrize(
    "name", ["o3-pro", "gpt-4o-audio-preview", "gpt-4omni", "claude-sonnet-4-7", "llama3:8b", "", None, "sim-unpriced"]
)
def test_other_models_have_no_price(table, name):
    assert table.price_for(name) is None
    assert table.cost(name, 1000, 1000, 0) is None  # unknown, never 0


def test_cost_charges_cached_input_at_the_cached_rate(table):
    # gpt-4o: 2.50 input, 1.25 cached, 10.00 output per 1M tokens; input includes cached.
    assert table.cost("gpt-4o", 1000, 500, 400) == pytest.approx((600 * 2.50 + 400 * 1.25 + 500 * 10.00) / 1e6)
    assert table.cost("gpt-4o", 1000, 500, None) == pytest.approx((1000 * 2.50 + 500 * 10.00) / 1e6)
    assert table.cost("gpt-4o", 1000, 500, 5000) == pytest.approx((1000 * 1.25 + 500 * 10.00) / 1e6)  # clamped
    assert table.cost("gpt-4o", 0, 0, 0) == 0.0  # known and free is 0; unknown is None


def test_cost_is_unknown_when_a_needed_count_is(table):
    assert table.cost("gpt-4o", None, 500, 0) is None
    assert table.cost("gpt-4o", 1000, None, 0) is None
    # Embeddings have no output: their cost needs input only.
    assert table.cost("text-embedding-3-small", 5000, None) == pytest.approx(5000 * 0.02 / 1e6)


def test_a_model_without_a_cached_rate_charges_cached_tokens_as_input(table):
    p = table.price_for("mistral-large")
    assert p.cached_input is None
    assert table.cost("mistral-large", 1000, 100, 800) == pytest.approx((1000 * 2.00 + 100 * 6.00) / 1e6)


def test_what_if_prices_a_run_at_another_model(table):
    totals = {"input_tokens": 2_000_000, "output_tokens": 1_000_000, "cached_input_tokens": 1_000_000}
    assert table.what_if(totals, "gpt-4o-mini") == pytest.approx(1 * 0.15 + 1 * 0.075 + 1 * 0.60)
    assert table.what_if(totals, "claude-sonnet-4-5") == pytest.approx(1 * 3.00 + 1 * 0.30 + 1 * 15.00)
    as_object = SimpleNamespace(**totals)
    assert table.what_if(as_object, "gpt-4o-mini") == table.what_if(totals, "gpt-4o-mini")
    assert table.what_if(totals, "no-such-model") is None


def test_a_user_table_replaces_the_packaged_one(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."my-llm"]\ninput = 1.0\noutput = 2.0\ncached_input = 0.5\n'
        'aliases = ["my-llm-fast"]\nsource = "https://example.com/p"\ndate = "2025-01-01"\n'
    )
    t = PriceTable.load(path)
    assert len(t) == 1 and t.price_for("gpt-4o") is None
    assert t.price_for("my-llm-fast") == Price("my-llm", 1.0, 2.0, 0.5, "https://example.com/p", "2025-01-01")
    assert t.cost("my-llm-2025-01-01", 1_000_000, 1_000_000, 1_000_000) == pytest.approx(0.5 + 2.0)


@pytest.mark.parametrize(
    "text,fragment",
    [
        (
            '[models."x"]\ninput = 1\noutput = 2\nsource = "s"\ndate = "d"\ncolour = "red"\n',
            'models."x"]: unknown key(s) colour',
        ),
        ('[models."x"]\ninput = -1\noutput = 2\nsource = "s"\ndate = "d"\n', "'input' must be a number >= 0"),
        ('[models."x"]\noutput = 2\nsource = "s"\ndate = "d"\n', "'input' is required"),
        ('[models."x"]\ninput = 1\noutput = 2\ndate = "d"\n', "'source' is required"),
        ('[models."x"]\ninput = "cheap"\noutput = 2\nsource = "s"\ndate = "d"\n', "must be a number"),
        (
            '[models."x"]\ninput = 1\noutput = 2\nsource = "s"\ndate = "d"\n[models."y"]\ninput = 1\noutput = 2\n'
            'source = "s"\ndate = "d"\naliases = ["x"]\n',
            "name 'x' is already used",
        ),
        ('[models."x"\n', "is not valid TOML"),
        ('[prices."x"]\ninput = 1\n', "unknown top-level key(s) prices"),
    ],
)
def test_bad_tables_fail_with_one_clear_line(tmp_path, text, fragment):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PricingError) as exc:
        PriceTable.load(path)
    assert fragment in str(exc.value) and str(path) in str(exc.value)
    with pytest.raises(PricingError, match="not found"):
        PriceTable.load(tmp_path / "missing.toml")


def test_the_lookup_cache_stays_bounded(table):
    t = PriceTable.load()
    for i in range(10_000):
        t.price_for(f"model-{i}")
    assert len(t._cache) <= 4096
    assert t.price_for("gpt-4o").model == "gpt-4o"
