"""Run by the tests in a subprocess: an app instrumented with the OpenTelemetry SDK, exporting
OTLP/HTTP (protobuf, gzip) to the collector with the official ``opentelemetry-exporter-otlp-proto-http``.

Usage: python otel_service.py ENDPOINT KEY DURATIONS_FILE

It runs ``GET /fast`` (20 ms) 6 times and ``GET /slow`` (150 ms) 4 times as SERVER spans with HTTP
attributes; each ``/slow`` runs six ``SELECT`` CLIENT spans by id one after the other (an N+1 query).
The real durations of the SERVER spans go to DURATIONS_FILE as JSON lines (from an in-memory
exporter next to the OTLP one).
"""

from __future__ import annotations

import json
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ENDPOINT, KEY, DURATIONS = sys.argv[1], sys.argv[2], sys.argv[3]

exporter = OTLPSpanExporter(
    endpoint=ENDPOINT, headers={"X-Sentry-Auth": f"sentry sentry_key={KEY}"}, compression=Compression.Gzip
)
results: list[SpanExportResult] = []
_export = exporter.export


def export(spans):  # type: ignore[no-untyped-def]
    result = _export(spans)
    results.append(result)
    return result


exporter.export = export  # type: ignore[method-assign]
provider = TracerProvider(
    resource=Resource.create(
        {
            "service.name": "otel-shop",
            "service.version": "otel-shop@3.1",
            "deployment.environment.name": "test",
        }
    )
)
# One batch at the end: a transaction's spans reach the collector in one export request.
provider.add_span_processor(
    BatchSpanProcessor(exporter, schedule_delay_millis=60_000, max_export_batch_size=512)
)
memory = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("otel-shop")


def handle(route: str, seconds: float) -> None:
    with tracer.start_as_current_span(
        f"GET {route}",
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.route": route, "http.response.status_code": 200},
    ):
        time.sleep(seconds)
        if route == "/slow":
            for item in range(6):
                with tracer.start_as_current_span(
                    "SELECT shop",
                    kind=trace.SpanKind.CLIENT,
                    attributes={
                        "db.system.name": "postgresql",
                        "db.query.text": f"SELECT * FROM items WHERE id = {item}",
                    },
                ):
                    time.sleep(0.002)


for route, seconds, n in (("/fast", 0.02, 6), ("/slow", 0.15, 4)):
    for _ in range(n):
        handle(route, seconds)
provider.shutdown()  # flushes the batch to the collector
with open(DURATIONS, "w") as f:
    for span in memory.get_finished_spans():
        if span.kind == trace.SpanKind.SERVER and span.end_time and span.start_time:
            f.write(
                json.dumps({"transaction": span.name, "ms": (span.end_time - span.start_time) / 1e6}) + "\n"
            )
print(json.dumps({"exports": [r.name for r in results]}))
