"""Moved to ``tests/helpers/otel.py``; this shim keeps older imports working."""

from tests.helpers.otel import INPUT, OUTPUT, genai_spans, json_body, protobuf_body

__all__ = ["INPUT", "OUTPUT", "genai_spans", "json_body", "protobuf_body"]
