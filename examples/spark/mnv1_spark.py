#!/usr/bin/env python3
"""mnv1 on Spark: one task per webdataset tar shard, Parquet out, a summary read back with Spark.

    spark-submit --master local[2] \\
        --files target/release/mnv1,examples/data/mobilenet_v1_0.25_128.tflite \\
        examples/spark/mnv1_spark.py '/data/shards/*.tar' --out /data/mnv1-out \\
        --mnv1 mnv1 --weights mobilenet_v1_0.25_128.tflite --variant 025_128 --threads 1

The driver expands the glob(s) (sorted; paths are made absolute), then runs
sc.parallelize(shards, numSlices=len(shards)): one partition, so one task, per shard. Each task
runs the mnv1 binary as a child process, once per mode:

    mnv1 embed    SHARD --out-dir OUT/embed    --format parquet --variant V --weights W --threads T
    mnv1 classify SHARD --out-dir OUT/classify --format parquet --variant V --weights W --threads T -k K

mnv1 writes OUT/<mode>/<shard stem>.parquet atomically when the shard is done and skips a shard
whose output exists (so a rerun of a killed job resumes; --overwrite redoes them). Every task
returns its exit code, wall time, the child's own peak RSS (through GNU time when /usr/bin/time
exists; otherwise os.wait4's figure, which on Linux includes the Python worker's RSS at fork) and
the Python worker's own peak RSS. The driver then reads this run's Parquet files with
spark.read.parquet and prints rows, the 10 most frequent top-1 labels and the per-task table.

Shards and OUT must be at the same path on every executor (local mode, NFS/Lustre, a FUSE mount of
an object store such as mountpoint-s3 or gcsfuse, Databricks' /dbfs or /Volumes). The binary and
the weights are either shipped with spark-submit --files (give their file names; the task finds
them with SparkFiles.get) or --archives (give NAME/relative/path), or are a path that exists on
every executor.

A failed task (exit code != 0, or the binary could not be started) is listed with the tail of its
stderr; the job then exits 1 after the summary (Spark does not retry it: mnv1's exit 1 means a
damaged shard, which a retry would not cure; rerunning the job redoes only what is missing).
"""

import argparse
import glob
import json
import os
import resource
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

MODES = ("embed", "classify")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards", nargs="+", help="tar shard paths or globs ('/data/*.tar'), or directories of .tar")
    ap.add_argument("--out", required=True, help="output directory: OUT/embed/*.parquet, OUT/classify/*.parquet")
    ap.add_argument("--mnv1", default="mnv1", help="the binary: a name shipped with --files, NAME/path inside an "
                    "--archives entry, or a path on every executor (default: %(default)s)")
    ap.add_argument("--weights", help="weights file, found like --mnv1 (without it mnv1 uses its cache)")
    ap.add_argument("--variant", default="025_128")
    ap.add_argument("--threads", type=int, default=1, help="mnv1 --threads per task (default: %(default)s)")
    ap.add_argument("-k", "--top-k", type=int, default=5)
    ap.add_argument("--modes", default="embed,classify", help="comma-separated subset of embed,classify")
    ap.add_argument("--overwrite", action="store_true", help="pass --overwrite: redo shards whose output exists")
    ap.add_argument("--mnv1-arg", action="append", default=[], help="extra argument for mnv1 (repeatable)")
    ap.add_argument("--stats", help="also write the per-task records and timings as JSON to this file")
    args = ap.parse_args(argv)
    args.modes = [m for m in args.modes.split(",") if m]
    for m in args.modes:
        if m not in MODES:
            ap.error(f"--modes: unknown mode {m!r}")
    return args


def expand_shards(patterns):
    """Sorted, de-duplicated absolute paths of .tar shards."""
    out = []
    for p in patterns:
        if os.path.isdir(p):
            hits = [os.path.join(p, n) for n in os.listdir(p) if n.endswith(".tar")]
        else:
            hits = glob.glob(p)
            if not hits and not glob.has_magic(p):
                hits = [p]  # let mnv1 report it as a failed input
        out.extend(os.path.abspath(h) for h in hits)
    return sorted(set(out))


def shard_stem(path):
    base = os.path.basename(path)
    return base[:-4] if base.endswith(".tar") else os.path.splitext(base)[0]


# ---------------------------------------------------------------------------- executor side

def resolve(name, driver_cwd, executable=False):
    """Finds a file shipped with --files/--archives (SparkFiles) or given as a path."""
    from pyspark import SparkFiles

    cands = []
    if os.path.isabs(name):
        cands.append(name)
    else:
        root = SparkFiles.getRootDirectory()
        cands += [os.path.join(root, name), os.path.join(os.getcwd(), name), os.path.join(driver_cwd, name)]
        if "/" not in name:
            cands.append(SparkFiles.get(name))
        found = shutil.which(name) if "/" not in name else None
        if found:
            cands.append(found)
    for c in cands:
        if os.path.isfile(c):
            if executable and not os.access(c, os.X_OK):
                # A file shipped without its execute bit: run a private executable copy.
                fd, copy = tempfile.mkstemp(prefix="mnv1-", dir=tempfile.gettempdir())
                with os.fdopen(fd, "wb") as dst, open(c, "rb") as src:
                    shutil.copyfileobj(src, dst)
                os.chmod(copy, stat.S_IRWXU)
                return copy
            return c
    raise FileNotFoundError(f"{name!r} not found (looked at {cands})")


# Linux starts a process's ru_maxrss at its parent's RSS when it forks and keeps that high-water mark
# across exec, so wait4 on a child of this Python worker reports at least the worker's own RSS. GNU
# time, itself ~1 MiB, forks the real child and reports that child's own peak.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_child(cmd, env=None):
    """Runs cmd; returns (exit code, wall s, the child's peak RSS in KiB, whether that figure is the
    child's own (through GNU time) or an upper bound that includes this worker, stderr tail)."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile(mode="r") as rss:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss.name, *cmd] if GNU_TIME else cmd
        t0 = time.monotonic()
        p = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
        # wait4 gives this child's rusage alone (RUSAGE_CHILDREN would be the maximum over every
        # child the reused Python worker ever waited for).
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-4000:].decode("utf-8", "replace")
        # GNU time writes "Command exited with non-zero status N" or "... terminated by signal N"
        # before the figure when the child failed.
        lines = rss.read().split()
        own = bool(GNU_TIME and lines and lines[-1].isdigit())
    return p.returncode, wall, int(lines[-1]) if own else ru.ru_maxrss, own, tail


def make_task(conf):
    def task(index, shards):
        records = []
        for shard in shards:
            base = {
                "shard": shard,
                "partition": index,
                "host": socket.gethostname(),
                "worker_pid": os.getpid(),
            }
            try:
                binary = resolve(conf["mnv1"], conf["driver_cwd"], executable=True)
                weights = resolve(conf["weights"], conf["driver_cwd"]) if conf["weights"] else None
            except Exception as e:  # noqa: BLE001 - reported in the summary
                for mode in conf["modes"]:
                    records.append(dict(base, mode=mode, rc=-1, wall_s=0.0, child_maxrss_kib=0,
                                        worker_maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                        existed=False, output=None, stderr=f"{type(e).__name__}: {e}"))
                continue
            for mode in conf["modes"]:
                out_dir = os.path.join(conf["out"], mode)
                os.makedirs(out_dir, exist_ok=True)
                output = os.path.join(out_dir, shard_stem(shard) + ".parquet")
                existed = os.path.exists(output)
                cmd = [binary, mode, shard, "--out-dir", out_dir, "--format", "parquet",
                       "--variant", conf["variant"], "--threads", str(conf["threads"])]
                if weights:
                    cmd += ["--weights", weights]
                if mode == "classify":
                    cmd += ["-k", str(conf["top_k"])]
                if conf["overwrite"]:
                    cmd.append("--overwrite")
                cmd += conf["extra"]
                try:
                    rc, wall, child_rss, rss_own, tail = run_child(cmd)
                except OSError as e:
                    rc, wall, child_rss, rss_own, tail = -1, 0.0, 0, False, f"{type(e).__name__}: {e}"
                records.append(dict(
                    base, mode=mode, rc=rc, wall_s=round(wall, 3), child_maxrss_kib=child_rss,
                    child_rss_own=rss_own, worker_maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                    existed=existed and not conf["overwrite"], output=output if os.path.exists(output) else None,
                    cmd=" ".join(cmd), stderr=tail if rc != 0 else tail[-500:],
                ))
        return records

    return task


# ------------------------------------------------------------------------------ driver side

def main(argv=None):
    t_start = time.monotonic()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    shards = expand_shards(args.shards)
    if not shards:
        print(f"mnv1_spark: no shards match {args.shards}", file=sys.stderr)
        return 2
    out = os.path.abspath(args.out)
    for mode in args.modes:
        os.makedirs(os.path.join(out, mode), exist_ok=True)

    from pyspark.sql import SparkSession, functions as F

    spark = (SparkSession.builder.appName("mnv1")
             .config("spark.ui.showConsoleProgress", "false")
             .getOrCreate())
    sc = spark.sparkContext
    sc.setLogLevel("WARN")
    t_session = time.monotonic()

    conf = {
        "mnv1": args.mnv1, "weights": args.weights, "variant": args.variant, "threads": args.threads,
        "top_k": args.top_k, "modes": args.modes, "overwrite": args.overwrite, "extra": args.mnv1_arg,
        "out": out, "driver_cwd": os.getcwd(),
    }
    # One partition per shard: Spark schedules one task per shard, as many at a time as the
    # executors have cores (spark.task.cpus can reserve more cores per task for --threads > 1).
    rdd = sc.parallelize(shards, numSlices=len(shards))
    records = rdd.mapPartitionsWithIndex(make_task(conf)).collect()
    t_job = time.monotonic()

    failed = [r for r in records if r["rc"] != 0]
    summary = {"shards": len(shards), "master": sc.master, "default_parallelism": sc.defaultParallelism}

    print(f"\n== mnv1 on Spark: {len(shards)} shards, master {sc.master}, modes {','.join(args.modes)}")
    print(f"   Spark session {t_session - t_start:.1f} s, tasks {t_job - t_session:.1f} s")

    # Read back what this run's shards produced (not whatever else lies in OUT).
    for mode in args.modes:
        files = [r["output"] for r in records if r["mode"] == mode and r["output"]]
        if not files:
            print(f"-- {mode}: no output files")
            continue
        df = spark.read.parquet(*files)
        rows = df.count()
        summary[f"{mode}_rows"] = rows
        summary[f"{mode}_files"] = len(files)
        if mode == "embed":
            dim = df.select(F.size("features").alias("d")).agg(F.min("d"), F.max("d")).first()
            summary["embed_dim"] = dim[0]
            print(f"-- embed: {rows} rows in {len(files)} Parquet files, features of dimension "
                  f"{dim[0]}{'' if dim[0] == dim[1] else '..' + str(dim[1])}; schema:")
            df.printSchema()
        else:
            print(f"-- classify: {rows} rows in {len(files)} Parquet files; the 10 most frequent top-1 labels:")
            top = (df.select(F.col("predictions")[0]["label"].alias("label"))
                   .groupBy("label").count()
                   .orderBy(F.desc("count"), F.asc("label")).limit(10).collect())
            summary["top_labels"] = [[r["label"], r["count"]] for r in top]
            for r in top:
                print(f"   {r['count']:7d}  {r['label']}")
    t_read = time.monotonic()

    exact = all(r.get("child_rss_own") for r in records)
    print("-- tasks (wall s, peak RSS of the mnv1 child and of the Python worker, MiB"
          + ("" if exact else "; no GNU time here, so the child figure includes the worker's RSS at fork") + "):")
    print(f"   {'shard':<24} {'mode':<9} {'rc':>3} {'wall':>8} {'child':>7} {'worker':>7}  host/pid")
    for r in sorted(records, key=lambda r: (r["shard"], r["mode"])):
        note = " (output existed)" if r["existed"] else ""
        print(f"   {os.path.basename(r['shard']):<24} {r['mode']:<9} {r['rc']:>3} {r['wall_s']:>8.2f} "
              f"{r['child_maxrss_kib'] / 1024:>7.1f} {r['worker_maxrss_kib'] / 1024:>7.1f}  "
              f"{r['host']}/{r['worker_pid']}{note}")
    if records:
        print(f"   max child RSS {max(r['child_maxrss_kib'] for r in records) / 1024:.1f} MiB, "
              f"max worker RSS {max(r['worker_maxrss_kib'] for r in records) / 1024:.1f} MiB")
    n_img = summary.get("embed_rows", summary.get("classify_rows", 0))
    if t_job > t_session and n_img:
        print(f"   {n_img} images, tasks {t_job - t_session:.2f} s ({n_img / (t_job - t_session):.1f} images/s "
              f"over {len(args.modes)} mode(s)), read-back {t_read - t_job:.1f} s")
    summary.update(session_s=round(t_session - t_start, 3), tasks_s=round(t_job - t_session, 3),
                   read_s=round(t_read - t_job, 3), failed=len(failed))

    if failed:
        print(f"!! {len(failed)} of {len(records)} mnv1 runs failed:", file=sys.stderr)
        for r in failed:
            print(f"!! {r['shard']} {r['mode']}: exit {r['rc']}\n{r['stderr'].rstrip()}", file=sys.stderr)
    if args.stats:
        with open(args.stats, "w", encoding="utf-8") as f:
            json.dump({"summary": summary, "tasks": records}, f, indent=1)
    spark.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
