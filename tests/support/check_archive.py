"""Checks an archive `streamcity archive` wrote, with Apache Arrow's own Parquet reader.

    python check_archive.py ARCHIVE_DIR EXPECTED_JSON

EXPECTED_JSON names each topic's partitions with the offsets the broker holds
({"topics": {name: {partition: [start, end]}}}) and a sample of records as the broker
gave them ({"samples": [{"topic", "partition", "offset", "key", "timestamp", "value"}]}).
Prints a JSON report: the rows per topic, and every problem found (a record missing or
written twice, a column of the wrong type, a value that differs from the sample, a
file not compressed with zstd, a record in the wrong date/hour folder).
"""

import datetime
import glob
import json
import os
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def main():
    root, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        expected = json.load(f)
    problems = []
    rows = {}
    tables = {}
    for topic, partitions in expected["topics"].items():
        folder = os.path.join(root, f"topic={topic}")
        want = sum(end - start for start, end in partitions.values())
        if not os.path.isdir(folder):
            rows[topic] = 0
            if want:
                problems.append(f"{topic}: no folder, {want} records expected")
            continue
        table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
        tables[topic] = table
        rows[topic] = table.num_rows
        schema = table.schema
        if schema.field("_timestamp").type != pa.timestamp("ms", tz="UTC"):
            problems.append(f"{topic}: _timestamp is {schema.field('_timestamp').type}")
        for name, kind in [("timestamp", pa.timestamp("ms", tz="UTC")), ("lat", pa.float64()),
                           ("passengers", pa.int64()), ("stop_id", pa.string())]:
            if name in schema.names and schema.field(name).type != kind:
                problems.append(f"{topic}: column {name} is {schema.field(name).type}, not {kind}")
        seen = {}
        parts = table.column("_partition").to_pylist()
        offsets = table.column("_offset").to_pylist()
        stamps = table.column("_timestamp").cast(pa.int64()).to_pylist()
        dates = table.column("date").to_pylist()
        hours = table.column("hour").to_pylist()
        for p, o, ts, d, h in zip(parts, offsets, stamps, dates, hours):
            seen.setdefault(p, []).append(o)
            when = datetime.datetime.fromtimestamp(ts / 1000, tz=datetime.timezone.utc)
            if str(d) != when.strftime("%Y-%m-%d") or int(h) != when.hour:
                problems.append(f"{topic}: offset {p}/{o} at {when} is in date={d}/hour={h}")
        for p, (start, end) in partitions.items():
            got = seen.get(int(p), [])
            if len(got) != len(set(got)):
                problems.append(f"{topic} partition {p}: {len(got) - len(set(got))} records written twice")
            missing = set(range(start, end)) - set(got)
            if missing:
                problems.append(f"{topic} partition {p}: {len(missing)} records missing, e.g. {sorted(missing)[:5]}")
            extra = set(got) - set(range(start, end))
            if extra:
                problems.append(f"{topic} partition {p}: offsets never produced: {sorted(extra)[:5]}")
        for path in glob.glob(os.path.join(folder, "**", "*.parquet"), recursive=True):
            meta = pq.ParquetFile(path).metadata
            codecs = {meta.row_group(g).column(c).compression
                      for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
            if codecs != {"ZSTD"}:
                problems.append(f"{path}: compressed with {codecs}")
    checked = 0
    for sample in expected["samples"]:
        table = tables.get(sample["topic"])
        if table is None:
            problems.append(f"sample of {sample['topic']}: topic not archived")
            continue
        mask = pa.compute.and_(pa.compute.equal(table.column("_partition"), sample["partition"]),
                               pa.compute.equal(table.column("_offset"), sample["offset"]))
        found = table.filter(mask)
        if found.num_rows != 1:
            problems.append(f"sample {sample['topic']} {sample['partition']}/{sample['offset']}: {found.num_rows} rows")
            continue
        row = found.to_pylist()[0]
        if row["_key"] != sample["key"]:
            problems.append(f"sample {sample['offset']}: key {row['_key']} != {sample['key']}")
        if int(row["_timestamp"].timestamp() * 1000) != sample["timestamp"]:
            problems.append(f"sample {sample['offset']}: _timestamp {row['_timestamp']} != {sample['timestamp']}")
        for name, value in sample["value"].items():
            got = row.get(name)
            if isinstance(got, datetime.datetime):
                got = round(got.timestamp() * 1000)
            elif isinstance(value, (list, dict)) and isinstance(got, str):
                got = json.loads(got)
            if isinstance(value, float) or isinstance(got, float):
                same = got is not None and abs(float(got) - float(value)) <= 1e-9 * max(1.0, abs(float(value)))
            else:
                same = got == value
            if not same:
                problems.append(f"sample {sample['topic']} {sample['offset']}: {name} is {got!r}, produced {value!r}")
        checked += 1
    print(json.dumps({"rows": rows, "samples_checked": checked, "problems": problems[:50]}))


if __name__ == "__main__":
    main()
