"""Decodes what `streamcity produce --format avro` wrote with fastavro, an Avro
implementation independent of StreamCity's, and compares every record with the JSON the
same run writes with --format json (same scenario, seed and start).

    check_avro.py files DIR JSONL
        DIR holds one object container file per topic (<topic>.avro).
    check_avro.py kafka BROKERS REGISTRY JSONL
        Every topic of JSONL is read from the broker (kafka-python); each value must be
        in Confluent's wire format: magic byte 0, a 4-byte big-endian schema id that the
        registry at REGISTRY knows (GET /schemas/ids/ID), then the Avro datum.

With --events (the twin's producers' records) a decoded record is turned back into the
event's JSON before comparing: null fields left out, timestamp-millis as ms, `_extra`
merged back.

Prints one JSON line of counts per topic; exits 1 with the first difference found.
"""

import io
import json
import math
import os
import sys
import urllib.request
from collections import defaultdict

import fastavro


def same(avro, expected, path="value"):
    """Whether a decoded Avro value equals the JSON one (numbers compared as numbers)."""
    if isinstance(expected, bool) or isinstance(avro, bool):
        if avro != expected:
            return f"{path}: {avro!r} != {expected!r}"
        return None
    if isinstance(expected, (int, float)) and isinstance(avro, (int, float)):
        if not math.isclose(avro, expected, rel_tol=1e-12, abs_tol=1e-12):
            return f"{path}: {avro!r} != {expected!r}"
        return None
    if isinstance(expected, dict):
        if not isinstance(avro, dict) or set(avro) != set(expected):
            return f"{path}: fields {sorted(avro) if isinstance(avro, dict) else avro!r} != {sorted(expected)}"
        for k in expected:
            problem = same(avro[k], expected[k], f"{path}.{k}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(avro, list) or len(avro) != len(expected):
            return f"{path}: {avro!r} != {expected!r}"
        for k, (a, e) in enumerate(zip(avro, expected)):
            problem = same(a, e, f"{path}[{k}]")
            if problem:
                return problem
        return None
    if avro != expected:
        return f"{path}: {avro!r} != {expected!r}"
    return None


EVENTS = False


def as_event(record, schema):
    """The twin's event a decoded record holds, as its JSON."""
    if not EVENTS:
        return record
    out = {}
    for k, v in record.items():
        if v is None:
            continue
        if k == "_extra":
            out.update(json.loads(v))
        elif hasattr(v, "timestamp"):
            out[k] = round(v.timestamp() * 1000)
        else:
            out[k] = v
    return out


def expected_by_topic(jsonl):
    by_topic = defaultdict(list)
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            by_topic[r["topic"]].append(r)
    return by_topic


def fail(message):
    print(message)
    sys.exit(1)


def check_files(directory, jsonl):
    for topic, expected in expected_by_topic(jsonl).items():
        path = os.path.join(directory, f"{topic}.avro")
        with open(path, "rb") as f:
            reader = fastavro.reader(f)
            decoded = list(reader)
        if len(decoded) != len(expected):
            fail(f"{topic}: {len(decoded)} records in {path}, {len(expected)} in the JSON")
        for k, (a, e) in enumerate(zip(decoded, expected)):
            problem = same(as_event(a, reader.writer_schema), e["value"], f"{topic}[{k}]")
            if problem:
                fail(problem)
        print(json.dumps({"topic": topic, "records": len(decoded), "schema": reader.writer_schema.get("name") if isinstance(reader.writer_schema, dict) else "union"}))


def check_kafka(brokers, registry, jsonl):
    from kafka import KafkaConsumer

    schemas = {}
    raw = {}

    def schema(schema_id):
        if schema_id not in schemas:
            with urllib.request.urlopen(f"{registry}/schemas/ids/{schema_id}", timeout=10) as r:
                text = json.load(r)["schema"]
            raw[schema_id] = json.loads(text)
            schemas[schema_id] = fastavro.parse_schema(json.loads(text))
        return schemas[schema_id]

    for topic, expected in expected_by_topic(jsonl).items():
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=brokers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=15000,
        )
        got = []
        for message in consumer:
            value = message.value
            if value[0] != 0:
                fail(f"{topic}: magic byte {value[0]}, not 0")
            schema_id = int.from_bytes(value[1:5], "big")
            record = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema(schema_id))
            record = as_event(record, raw[schema_id])
            key = message.key.decode() if message.key is not None else None
            got.append((key, message.timestamp, record))
            if len(got) == len(expected):
                break
        consumer.close()
        if len(got) != len(expected):
            fail(f"{topic}: read {len(got)} records, {len(expected)} were produced")
        order = lambda kv: (str(kv[0]), kv[1], json.dumps(kv[2], sort_keys=True, default=str))
        got.sort(key=order)
        want = sorted(((e["key"], e["timestamp"], e["value"]) for e in expected), key=order)
        for k, (g, w) in enumerate(zip(got, want)):
            if g[0] != w[0] or g[1] != w[1]:
                fail(f"{topic}[{k}]: key/timestamp {g[:2]} != {w[:2]}")
            problem = same(g[2], w[2], f"{topic}[{k}]")
            if problem:
                fail(problem)
        print(json.dumps({"topic": topic, "records": len(got), "schema_ids": sorted(schemas)}))


def main():
    global EVENTS
    if "--events" in sys.argv:
        EVENTS = True
        sys.argv.remove("--events")
    mode = sys.argv[1]
    if mode == "files":
        check_files(sys.argv[2], sys.argv[3])
    elif mode == "kafka":
        check_kafka(sys.argv[2], sys.argv[3].rstrip("/"), sys.argv[4])
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
