"""A producer written the way the seeds write theirs, for the producer comparison.

kafka-python's KafkaProducer with a JSON value serializer, one send() per event with
its key, then flush(): what the seeds' random_event_producer.py and their test
producers do, with nothing slowing it down (no sleep between events).

The events are the twin's own, read from a JSON-lines file of
{"topic": ..., "key": ..., "value": {...}} written by `cargo bench --bench
kafka_produce`, so both producers send the same records. Loading and parsing the file is
not timed; serialising and sending is. Prints one JSON object:
{"records": N, "delivered": N, "failed": N, "seconds": S, "rate": R}.
"""

import argparse
import json
import sys
import time

import warnings

from kafka import KafkaProducer

# kafka-python 3 warns about plain functions as serializers; the seeds use them.
warnings.filterwarnings("ignore", category=DeprecationWarning)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True, help="bootstrap servers, host:port")
    parser.add_argument("--input", required=True, help="JSON lines of topic, key, value")
    parser.add_argument("--records", type=int, default=0, help="send at most this many (0: all)")
    args = parser.parse_args()

    with open(args.input, encoding="utf-8") as f:
        events = [json.loads(line) for line in f if line.strip()]
    if args.records:
        events = events[: args.records]

    producer = KafkaProducer(
        bootstrap_servers=args.brokers,
        key_serializer=lambda k: k.encode("utf-8"),
        value_serializer=lambda v: json.dumps(v).encode("utf-8"),
    )
    delivered = 0
    failed = 0

    def ok(_metadata):
        nonlocal delivered
        delivered += 1

    def error(_exc):
        nonlocal failed
        failed += 1

    started = time.perf_counter()
    for event in events:
        producer.send(event["topic"], key=event["key"], value=event["value"]).add_callback(
            ok
        ).add_errback(error)
    producer.flush()
    seconds = time.perf_counter() - started
    producer.close()
    json.dump(
        {
            "records": len(events),
            "delivered": delivered,
            "failed": failed,
            "seconds": seconds,
            "rate": len(events) / seconds if seconds > 0 else 0.0,
        },
        sys.stdout,
    )
    print()
    return 0 if failed == 0 and delivered == len(events) else 1


if __name__ == "__main__":
    sys.exit(main())
