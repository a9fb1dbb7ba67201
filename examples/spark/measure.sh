#!/usr/bin/env bash
# The measurements of examples/spark/README.md ("Measured"): one mnv1 process against the Spark job
# on Spark's local mode, on the same tar shards, and resumed runs with 3 of 4 shards done.
#   MNV1_BIN=target/release/mnv1 examples/spark/measure.sh
# Needs the virtualenv test_spark.sh makes (.spark-venv/) and GNU time (/usr/bin/time).
# Environment: SHARDS (4) x PER_SHARD (1250) images, made by make_shards.py from
# DATA/imagenet-sample-200 (the 200 photos, augmented after the first pass; synthetic without
# them); THREADS (2, the single process and the Spark master local[THREADS]); REPEAT (3).
# Writes target/spark-measure/results.tsv and prints it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=examples/spark
VENV=${SPARK_VENV:-$ROOT/.spark-venv}
WORK=${SPARK_WORK:-$ROOT/target/spark-measure}
DATA=${DATA:-../shared/testdata}
SHARDS=${SHARDS:-4}
PER_SHARD=${PER_SHARD:-1250}
THREADS=${THREADS:-2}
REPEAT=${REPEAT:-3}
MNV1_BIN=${MNV1_BIN:-$ROOT/target/release/mnv1}
WEIGHTS=$ROOT/examples/data/mobilenet_v1_0.25_128.tflite
PY=$VENV/bin/python
MODEL=(--variant 025_128 --weights "$WEIGHTS")
export PYSPARK_PYTHON=$PY PYSPARK_DRIVER_PYTHON=$PY SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}

mkdir -p "$WORK"
if [ ! -f "$WORK/shards/.done-$SHARDS-$PER_SHARD" ]; then
    rm -rf "$WORK/shards"
    "$PY" "$HERE/make_shards.py" --out "$WORK/shards" --shards "$SHARDS" --per-shard "$PER_SHARD" \
        --source "$DATA/imagenet-sample-200"
    touch "$WORK/shards/.done-$SHARDS-$PER_SHARD"
fi
N=$((SHARDS * PER_SHARD))
RES=$WORK/results.tsv
printf 'what\trun\twall_s\timages_per_s\tmax_rss_mib\n' > "$RES"

# timed NAME RUN CMD...: wall seconds and max RSS (GNU time) of CMD into results.tsv.
timed() {
    local name=$1 run=$2; shift 2
    /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$@" > "$WORK/$name.$run.log" 2>&1 \
        || { echo "FAILED: $name (log: $WORK/$name.$run.log)" >&2; tail -20 "$WORK/$name.$run.log" >&2; exit 1; }
    read -r wall kib < "$WORK/time.txt"
    printf '%s\t%s\t%s\t%s\t%.1f\n' "$name" "$run" "$wall" \
        "$(awk -v n="$N" -v w="$wall" 'BEGIN { printf "%.1f", n / w }')" "$(awk -v k="$kib" 'BEGIN { print k / 1024 }')" \
        | tee -a "$RES"
}
SPARK=("$VENV/bin/spark-submit" --master "local[$THREADS]"
    --conf spark.ui.enabled=false --conf spark.log.level=WARN --conf "spark.local.dir=$WORK/tmp"
    --files "$MNV1_BIN,$WEIGHTS"
    "$HERE/mnv1_spark.py" "$WORK/shards/*.tar" --out "$WORK/spark" --modes embed
    --mnv1 "$(basename "$MNV1_BIN")" --weights "$(basename "$WEIGHTS")" --variant 025_128 --threads 1)

# The JVM and a Spark session alone: start, run one trivial job, stop.
cat > "$WORK/empty.py" <<'EOF'
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.parallelize(range(4), 4).count()
spark.stop()
EOF

for r in $(seq 1 "$REPEAT"); do
    timed spark_session_only "$r" "$VENV/bin/spark-submit" --master "local[$THREADS]" \
        --conf spark.ui.enabled=false --conf spark.log.level=WARN "$WORK/empty.py"
    rm -rf "$WORK/one" "$WORK/spark" "$WORK/tmp"
    timed one_process_npy "$r" "$MNV1_BIN" embed "$WORK"/shards/*.tar --out "$WORK/one.npy" "${MODEL[@]}" --threads "$THREADS"
    timed one_process_out_dir "$r" "$MNV1_BIN" embed "$WORK"/shards/*.tar --out-dir "$WORK/one" "${MODEL[@]}" --threads "$THREADS"
    timed spark_local "$r" "${SPARK[@]}" --stats "$WORK/spark_local.$r.json"
    # JVM + Spark session + the read-back with nothing to compute: every output exists.
    timed spark_all_done "$r" "${SPARK[@]}" --stats "$WORK/spark_all_done.$r.json"
    # Resumed: 3 of 4 shards done.
    rm "$WORK/spark/embed/$(ls "$WORK/spark/embed" | tail -1)"
    timed spark_resume_3_of_4 "$r" "${SPARK[@]}" --stats "$WORK/spark_resume.$r.json"
    rm "$WORK/one/$(ls "$WORK/one" | tail -1)"
    timed one_process_resume_3_of_4 "$r" "$MNV1_BIN" embed "$WORK"/shards/*.tar --out-dir "$WORK/one" "${MODEL[@]}" --threads "$THREADS"
done

# The per-task figures of the Spark runs: the mnv1 child and the Python worker.
"$PY" - "$WORK" "$REPEAT" <<'EOF'
import json, sys
work, repeat = sys.argv[1], int(sys.argv[2])
for kind in ("spark_local", "spark_all_done", "spark_resume"):
    for r in range(1, repeat + 1):
        d = json.load(open(f"{work}/{kind}.{r}.json"))
        s, t = d["summary"], d["tasks"]
        ran = [x for x in t if not x["existed"]]
        print(f"{kind} run {r}: session {s['session_s']:.1f} s, tasks {s['tasks_s']:.2f} s, read-back {s['read_s']:.1f} s; "
              f"{len(ran)} of {len(t)} tasks computed; per task wall "
              f"{', '.join('%.2f' % x['wall_s'] for x in t)} s; child peak RSS "
              f"{max(x['child_maxrss_kib'] for x in t) / 1024:.1f} MiB; Python worker peak RSS "
              f"{max(x['worker_maxrss_kib'] for x in t) / 1024:.1f} MiB")
EOF
echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
