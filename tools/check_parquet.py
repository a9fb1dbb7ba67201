#!/usr/bin/env python3
"""Read mnv1's Parquet outputs with pyarrow, pandas and DuckDB, and check them against the same run's
.npy (embed) and .jsonl (classify) outputs (issue 15, item 2: other readers take the files as is).

    python3 -m venv /tmp/pqv && /tmp/pqv/bin/pip install pyarrow pandas duckdb
    mnv1 embed DIR --variant V --out emb.parquet;   mnv1 embed DIR --variant V --out emb.npy
    mnv1 classify DIR --variant V --out cls.parquet; mnv1 classify DIR --variant V --out cls.jsonl
    /tmp/pqv/bin/python tools/check_parquet.py emb.parquet emb.npy [cls.parquet cls.jsonl]

Exits 1 on the first difference; prints what each reader saw.
"""
import json
import sys

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def fail(msg):
    print(f"check_parquet: {msg}", file=sys.stderr)
    sys.exit(1)


def check_embed(parquet, npy):
    want = np.load(npy)
    want_paths = open(npy + ".paths.txt", encoding="utf-8").read().splitlines()
    n, d = want.shape

    table = pq.read_table(parquet)
    schema = table.schema
    if schema.field("path").type != pa.string():
        fail(f"path is {schema.field('path').type}, not string")
    ftype = schema.field("features").type
    if not (pa.types.is_fixed_size_list(ftype) and ftype.list_size == d and ftype.value_type == pa.float32()):
        fail(f"features is {ftype}, not fixed_size_list<float32>[{d}]")
    meta = pq.ParquetFile(parquet).metadata
    codecs = {meta.row_group(g).column(c).compression for g in range(meta.num_row_groups) for c in range(meta.num_columns)}
    got = np.stack(table.column("features").to_numpy(zero_copy_only=False))
    if table.column("path").to_pylist() != want_paths or not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
        fail("pyarrow: embed rows differ from the .npy output")
    print(f"pyarrow {pa.__version__}: {n} rows, features {ftype}, {meta.num_row_groups} row group(s), codecs {sorted(codecs)}: equal to {npy} bit for bit")

    df = pd.read_parquet(parquet)
    if list(df.columns) != ["path", "features"] or len(df) != n:
        fail(f"pandas: columns {list(df.columns)}, {len(df)} rows")
    if not np.array_equal(np.stack(df["features"].to_numpy()).astype(np.float32).view(np.uint32), want.view(np.uint32)):
        fail("pandas: features differ")
    print(f"pandas {pd.__version__}: {len(df)} rows, equal")

    con = duckdb.connect()
    rows = con.execute("SELECT path, features FROM read_parquet(?)", [parquet]).fetchall()
    typ = con.execute("SELECT typeof(features) FROM read_parquet(?) LIMIT 1", [parquet]).fetchone()[0]
    got = np.array([r[1] for r in rows], dtype=np.float32)
    if [r[0] for r in rows] != want_paths or not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
        fail("duckdb: embed rows differ")
    print(f"duckdb {duckdb.__version__}: {len(rows)} rows, features {typ}, equal")


def check_classify(parquet, jsonl):
    want = [json.loads(line) for line in open(jsonl, encoding="utf-8")]
    table = pq.read_table(parquet)
    ptype = table.schema.field("predictions").type
    fields = [(f.name, f.type) for f in ptype.value_type] if pa.types.is_list(ptype) else None
    if fields != [("index", pa.int32()), ("label", pa.string()), ("probability", pa.float32()), ("logit", pa.float32())]:
        fail(f"predictions is {ptype}, not list<struct<index int32, label string, probability float32, logit float32>>")
    rows = table.to_pylist()

    def same(row, ref):
        if row["path"] != ref["path"] or len(row["predictions"]) != len(ref["predictions"]):
            return False
        for p, q in zip(row["predictions"], ref["predictions"]):
            # jsonl prints each f32 as the shortest decimal that reads back to it.
            if (p["index"], p["label"]) != (q["index"], q["label"]):
                return False
            if np.float32(p["probability"]) != np.float32(q["probability"]) or np.float32(p["logit"]) != np.float32(q["logit"]):
                return False
        return True

    if len(rows) != len(want) or not all(same(r, w) for r, w in zip(rows, want)):
        fail("pyarrow: classify rows differ from the .jsonl output")
    print(f"pyarrow: {len(rows)} rows, predictions {ptype}, equal to {jsonl}")

    df = pd.read_parquet(parquet)
    if len(df) != len(want) or df["predictions"].iloc[0][0]["label"] != want[0]["predictions"][0]["label"]:
        fail("pandas: classify differs")
    print(f"pandas: {len(df)} rows, first top-1 {df['predictions'].iloc[0][0]['label']!r}")

    con = duckdb.connect()
    top = con.execute("""SELECT predictions[1].label AS top1, count(*) AS n FROM read_parquet(?)
                         GROUP BY top1 ORDER BY n DESC, top1 LIMIT 3""", [parquet]).fetchall()
    ref = {}
    for w in want:
        ref[w["predictions"][0]["label"]] = ref.get(w["predictions"][0]["label"], 0) + 1
    if any(ref.get(label) != n for label, n in top):
        fail(f"duckdb: top-1 counts {top} differ from the .jsonl output")
    print(f"duckdb: most frequent top-1 labels {top}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 5):
        sys.exit(__doc__)
    check_embed(sys.argv[1], sys.argv[2])
    if len(sys.argv) == 5:
        check_classify(sys.argv[3], sys.argv[4])
