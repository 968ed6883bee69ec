"""The span export child process (``span_process``): read batches on stdin, export, answer one byte.

Input: a length-prefixed pickle of ``(protocol, endpoint, headers, timeout)``, then one per
batch of flattened spans. Output: ``b"1"`` (exported) or ``b"0"`` (failed) per batch. The
parent is the proxy itself (the pickles are its own); end of input ends the process.
"""

from __future__ import annotations

import logging
import pickle
import sys
from typing import IO, Any

from .span_process import _LEN, rebuild


def _read(stream: IO[bytes]) -> Any:
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (n,) = _LEN.unpack(head)
    body = stream.read(n)
    if len(body) < n:
        return None
    return pickle.loads(body)


def _exporter(protocol: str, endpoint: str, headers: dict[str, str] | None, timeout: float) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, headers=headers, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=endpoint, headers=headers, timeout=timeout)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="tokentail span export: %(message)s")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    config = _read(stdin)
    if config is None:
        return
    exporter = _exporter(*config)
    from opentelemetry.sdk.trace import SpanLimits
    from opentelemetry.sdk.trace.export import SpanExportResult

    limits = SpanLimits()  # from the environment inherited from the proxy, as its SDK reads it

    while True:
        batch = _read(stdin)
        if batch is None:
            break
        try:
            ok = exporter.export([rebuild(f, limits) for f in batch]) is SpanExportResult.SUCCESS
        except Exception:
            logging.getLogger(__name__).warning("span export raised", exc_info=True)
            ok = False
        try:
            stdout.write(b"1" if ok else b"0")
            stdout.flush()
        except OSError:  # the proxy is gone, or gave up on this batch and closed the pipe
            break
    exporter.shutdown()


if __name__ == "__main__":
    main()
