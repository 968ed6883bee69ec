"""Model prices and request cost (pure; the only I/O is an explicit ``PriceTable.load``).

The table is TOML (``tokentail/data/pricing.toml`` is packaged; ``tokentail proxy
--pricing PATH`` replaces it): one ``[models."NAME"]`` table per model with ``input``,
``output`` and optional ``cached_input`` in USD per 1 million tokens, ``source`` (URL),
``date``, optional ``aliases`` and ``note``.

A model name matches an entry by its exact name or alias, or by that name followed by a
date/version suffix only (``gpt-4o-2024-08-06`` -> ``gpt-4o``, ``claude-sonnet-4-20250514``
-> ``claude-sonnet-4``, ``mistral-large-2411``, ``gemini-2.0-flash-001``, ``-latest``,
``-v1:0``); the longest name wins. Any other suffix is a different model with its own price
(``gpt-4o-mini``, ``o3-pro``, ``gpt-4o-audio-preview``), so it is *unknown* until it has an
entry: a wrong price is worse than none. Provider prefixes are ignored (``openai/gpt-4o``,
``models/gemini-2.5-pro``, Bedrock's ``us.anthropic.claude-...``).

Cost follows DESIGN's token accounting: input tokens include cached ones, so
``cost = (input - cached) * input_rate + cached * cached_rate + output * output_rate``.
Unknown is ``None``, never 0.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

__all__ = ["DEFAULT_PATH", "Price", "PriceTable", "PricingError"]

DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "pricing.toml"
PER_TOKENS = 1_000_000
_CACHE_MAX = 4096  # distinct model strings remembered (names are client-chosen: bounded)

# What may follow an entry's name for a dated/versioned name to share its price.
_VERSION_SUFFIX = re.compile(
    r"(?:[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3,4}|\d{2}-\d{2}|latest|preview|exp|v\d+(?::\d+)?))+"
)
# Bedrock-style ids: [region.]vendor.model (the dots inside "gpt-4.1" are not a prefix).
_VENDOR_PREFIX = re.compile(r"^(?:[a-z]{2,6}\.)?(?:anthropic|meta|mistral|deepseek|openai|google|amazon|cohere)\.")
_KEYS = frozenset({"input", "cached_input", "output", "source", "date", "aliases", "note"})


class PricingError(ValueError):
    """A price table that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1 million tokens of one model."""

    model: str
    input: float
    output: float
    cached_input: float | None = None  # None: cached tokens cost the input rate
    source: str = ""
    date: str = ""
    note: str = ""

    @property
    def cached_rate(self) -> float:
        return self.input if self.cached_input is None else self.cached_input

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input": self.input,
            "cached_input": self.cached_input,
            "output": self.output,
            "source": self.source,
            "date": self.date,
            "note": self.note,
        }


def normalize_model(model: str) -> str:
    """Lower-cased, without provider prefixes (``openai/``, ``models/``, ``us.anthropic.``)."""
    name = model.strip().lower()
    name = name.rsplit("/", 1)[-1]
    return _VENDOR_PREFIX.sub("", name)


class PriceTable:
    """Prices by model name; ``price_for`` / ``cost`` / ``what_if``. Build with ``load``."""

    def __init__(self, prices: list[Price], aliases: Mapping[str, str] | None = None, path: str | None = None):
        self.path = path
        self._prices = {p.model: p for p in prices}
        self._names: dict[str, Price] = dict(self._prices)  # name or alias -> price
        for alias, target in (aliases or {}).items():
            self._names[alias] = self._prices[target]
        self._by_length = sorted(self._names, key=len, reverse=True)
        self._cache: dict[str, Price | None] = {}

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """Read a price table (default: the packaged one). Raises ``PricingError``."""
        p = Path(path) if path is not None else DEFAULT_PATH
        try:
            with p.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise PricingError(f"pricing file not found: {p}") from None
        except OSError as exc:
            raise PricingError(f"cannot read pricing file {p}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise PricingError(f"pricing file {p} is not valid TOML: {exc}") from None
        return cls.from_dict(data, str(p))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "pricing table") -> PriceTable:
        extra = sorted(set(data) - {"models"})
        if extra:
            raise PricingError(
                f'{where}: unknown top-level key(s) {", ".join(extra)} (expected [models."NAME"] tables)'
            )
        models = data.get("models", {})
        if not isinstance(models, Mapping):
            raise PricingError(f"{where}: 'models' must be a table of [models.\"NAME\"] tables")
        prices: list[Price] = []
        aliases: dict[str, str] = {}
        seen: dict[str, str] = {}
        for raw_name, entry in models.items():
            name = raw_name.strip().lower()
            here = f'{where}: [models."{raw_name}"]'
            if not name:
                raise PricingError(f"{here}: empty model name")
            if not isinstance(entry, Mapping):
                raise PricingError(f"{here}: must be a table")
            unknown = sorted(set(entry) - _KEYS)
            if unknown:
                raise PricingError(f"{here}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_KEYS))})")
            input_rate = _rate(entry, "input", here, required=True)
            output_rate = _rate(entry, "output", here, required=True)
            cached_rate = _rate(entry, "cached_input", here, required=False)
            for k in ("source", "date"):
                if not isinstance(entry.get(k), str) or not entry[k].strip():
                    raise PricingError(f"{here}: '{k}' is required (a non-empty string)")
            note = entry.get("note", "")
            if not isinstance(note, str):
                raise PricingError(f"{here}: 'note' must be a string")
            names = entry.get("aliases", [])
            if not isinstance(names, list) or not all(isinstance(a, str) and a.strip() for a in names):
                raise PricingError(f"{here}: 'aliases' must be a list of names")
            for n in [name, *(a.strip().lower() for a in names)]:
                if n in seen:
                    raise PricingError(f'{here}: name {n!r} is already used by [models."{seen[n]}"]')
                seen[n] = raw_name
                if n != name:
                    aliases[n] = name
            prices.append(
                Price(
                    model=name,
                    input=input_rate,
                    output=output_rate,
                    cached_input=cached_rate,
                    source=entry["source"].strip(),
                    date=str(entry["date"]).strip(),
                    note=note,
                )
            )
        return cls(prices, aliases, where)

    def __len__(self) -> int:
        return len(self._prices)

    def models(self) -> list[Price]:
        """Every entry, in table order."""
        return list(self._prices.values())

    def price_for(self, model: str | None) -> Price | None:
        """The price of ``model`` (see the module docstring for matching), or None."""
        if not model:
            return None
        cache = self._cache
        try:
            return cache[model]
        except KeyError:
            pass
        price = self._match(normalize_model(model))
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[model] = price
        return price

    def _match(self, name: str) -> Price | None:
        price = self._names.get(name)
        if price is not None:
            return price
        for key in self._by_length:  # longest first: gpt-4o-mini-2024-07-18 is gpt-4o-mini
            if name.startswith(key) and _VERSION_SUFFIX.fullmatch(name, len(key)):
                return self._names[key]
        return None

    def cost(
        self,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None = None,
    ) -> float | None:
        """USD of one request, or None when the model has no price or a needed count is unknown.

        ``input_tokens`` includes ``cached_input_tokens`` (charged at the cached rate); an
        unknown cached count means none were cached. Output is needed unless the model's
        output is free (embeddings).
        """
        price = self.price_for(model)
        if price is None:
            return None
        return price_cost(price, input_tokens, output_tokens, cached_input_tokens)

    def what_if(self, usage_totals: Any, model: str) -> float | None:
        """What ``usage_totals`` (a mapping or object with ``input_tokens``, ``output_tokens``,
        ``cached_input_tokens``, e.g. the summed usage of a run) would cost at ``model``'s prices."""

        def get(key: str) -> Any:
            if isinstance(usage_totals, Mapping):
                return usage_totals.get(key)
            return getattr(usage_totals, key, None)

        return self.cost(model, get("input_tokens"), get("output_tokens"), get("cached_input_tokens"))


def price_cost(
    price: Price, input_tokens: int | None, output_tokens: int | None, cached_input_tokens: int | None = None
) -> float | None:
    """``PriceTable.cost`` for a known price."""
    if input_tokens is None:
        return None
    if output_tokens is None:
        if price.output:
            return None
        output_tokens = 0
    inp = max(0, input_tokens)
    cached = min(max(0, cached_input_tokens or 0), inp)
    total = (inp - cached) * price.input + cached * price.cached_rate + max(0, output_tokens) * price.output
    return total / PER_TOKENS


@overload
def _rate(entry: Mapping[str, Any], key: str, here: str, *, required: Literal[True]) -> float: ...
@overload
def _rate(entry: Mapping[str, Any], key: str, here: str, *, required: bool) -> float | None: ...
def _rate(entry: Mapping[str, Any], key: str, here: str, *, required: bool) -> float | None:
    v = entry.get(key)
    if v is None:
        if required:
            raise PricingError(f"{here}: '{key}' is required (USD per 1M tokens)")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise PricingError(f"{here}: '{key}' must be a number >= 0 (USD per 1M tokens), not {v!r}")
    return float(v)
