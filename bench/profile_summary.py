"""Sum up py-spy collapsed stacks (``py-spy record -f raw``) into "where the time goes".

``python bench/profile_summary.py FILE [--top N]``: the share of samples per thread, the
inclusive share of each tokentail function and of a few library areas (aiohttp's HTTP
layer, the event loop and sockets, the OTel SDK, the OTLP exporter), and the top self time.
"""

from __future__ import annotations

import argparse
import collections
import re

AREAS = {
    "span export thread (encode + HTTP)": ("OTLPSpanExporter", "BatchProcessor._export", "_CountingExporter.export"),
    "OTel SDK on the loop (span objects)": ("start_span (opentelemetry", "Span.end", "add_event", "set_attributes"),
    "aiohttp server (parse, write)": ("web_protocol.py", "http_writer.py", "web_response.py", "http_parser.py"),
    "aiohttp client (upstream)": ("client_reqrep.py", "client_proto.py", "streams.py", "connector.py"),
    "event loop + selectors": ("base_events.py", "selector_events.py", "selectors.py"),
}
_FRAME = re.compile(r"^(.*?) \((.*?):(\d+)\)$")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    total = 0
    threads: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    idle = 0
    for line in open(a.file):
        stack, _, n_s = line.rstrip("\n").rpartition(" ")
        n = int(n_s)
        frames = stack.split(";")
        total += n
        threads[frames[0]] += n
        names = []
        for f in frames[1:]:
            m = _FRAME.match(f)
            names.append(f"{m.group(1)} ({m.group(2)})" if m else f)
        if names and ("select (selectors.py)" in names[-1] or "wait (threading.py)" in names[-1]):
            idle += n
        for name in set(names):
            if "proxy/" in name or "tokentail/" in name:
                incl[name] += n
        for area, keys in AREAS.items():
            if any(k in f for f in frames for k in keys):
                areas[area] += n
        if names:
            self_[names[-1]] += n
    pc = 100.0 / max(total, 1)
    print(f"{total} samples; idle (select/wait) {idle * pc:.1f}%")
    for t, n in threads.most_common():
        print(f"  thread {t[:60]:60} {n * pc:5.1f}%")
    print("areas (inclusive):")
    for k, n in areas.most_common():
        print(f"  {n * pc:5.1f}%  {k}")
    print("tokentail functions (inclusive):")
    for k, n in incl.most_common(a.top):
        print(f"  {n * pc:5.1f}%  {k}")
    print("self time:")
    for k, n in self_.most_common(a.top):
        print(f"  {n * pc:5.1f}%  {k}")


if __name__ == "__main__":
    main()
