#!/usr/bin/env bash
# The Spark example end to end on Spark's local mode (local[2]): `make test-spark`, or
#   MNV1_BIN=target/release/mnv1 examples/spark/test_spark.sh
# On a fresh Debian/Ubuntu machine it installs what is missing: openjdk-17-jre-headless (apt-get,
# when `java` is absent or older than 17), GNU time, and a virtualenv SPARK_VENV (default .spark-venv/ in the
# repository, ignored by git) with examples/spark/requirements.txt (pyspark, pyarrow, numpy, pillow).
# Then: tar shards (photos from DATA/imagenet-sample-200 when present, else synthetic), the Spark
# job with the binary and weights shipped by --files, a rerun that must skip every shard and leave
# the outputs byte for byte, and check_spark.py (every image once, features and predictions equal
# to single-process mnv1 bit for bit). Exits non-zero on any failure.
#
# Environment: MNV1_BIN (default: target/release/mnv1, built with cargo when missing), DATA
# (default ../shared/testdata), SPARK_VENV, SPARK_WORK (default target/spark-test, wiped first),
# SHARDS (4) and PER_SHARD (50), PYTHON (python3, for the virtualenv).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
HERE=examples/spark
VENV=${SPARK_VENV:-$ROOT/.spark-venv}
WORK=${SPARK_WORK:-$ROOT/target/spark-test}
DATA=${DATA:-../shared/testdata}
SHARDS=${SHARDS:-4}
PER_SHARD=${PER_SHARD:-50}
PYTHON=${PYTHON:-python3}
WEIGHTS=$ROOT/examples/data/mobilenet_v1_0.25_128.tflite
VARIANT=025_128

say() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    command -v apt-get >/dev/null || { echo "need $* but apt-get is absent: install it yourself" >&2; exit 1; }
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# Java 17+ (pyspark 4 needs it).
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
    say "installing openjdk-17-jre-headless"
    apt_install openjdk-17-jre-headless
fi
echo "java: $(java -version 2>&1 | head -1)"

# GNU time: the job measures each mnv1 child's own peak RSS through it (mnv1_spark.py says why).
if [ ! -x /usr/bin/time ]; then
    say "installing time (GNU time)"
    apt_install time
fi

# The virtualenv.
if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtualenv $VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        rm -rf "$VENV"
        apt_install python3-venv
        "$PYTHON" -m venv "$VENV"
    fi
fi
if ! "$VENV/bin/python" -c 'import pyspark, pyarrow, numpy, PIL' 2>/dev/null; then
    say "installing $HERE/requirements.txt into $VENV (pyspark is a ~450 MB download)"
    "$VENV/bin/python" -m pip install -q -r "$HERE/requirements.txt"
fi
PY=$VENV/bin/python
echo "pyspark $("$PY" -c 'import pyspark; print(pyspark.__version__)'), $("$PY" --version)"

# The binary.
if [ -z "${MNV1_BIN:-}" ]; then
    MNV1_BIN=$ROOT/target/release/mnv1
    if [ ! -x "$MNV1_BIN" ]; then
        say "cargo build --release"
        cargo build --release
    fi
fi
MNV1_BIN=$(cd "$(dirname "$MNV1_BIN")" && pwd)/$(basename "$MNV1_BIN")
[ -x "$MNV1_BIN" ] || { echo "MNV1_BIN=$MNV1_BIN is not an executable" >&2; exit 1; }
echo "mnv1: $MNV1_BIN"

rm -rf "$WORK"
mkdir -p "$WORK"
say "tar shards"
"$PY" "$HERE/make_shards.py" --out "$WORK/shards" --shards "$SHARDS" --per-shard "$PER_SHARD" \
    --source "$DATA/imagenet-sample-200"

export PYSPARK_PYTHON=$PY PYSPARK_DRIVER_PYTHON=$PY
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
# The binary and the weights travel with --files, as on a cluster; the job finds them by name.
submit() {
    "$VENV/bin/spark-submit" --master 'local[2]' \
        --conf spark.ui.enabled=false --conf spark.log.level=WARN --conf "spark.local.dir=$WORK/tmp" \
        --files "$MNV1_BIN,$WEIGHTS" \
        "$HERE/mnv1_spark.py" "$WORK/shards/*.tar" --out "$WORK/out" \
        --mnv1 "$(basename "$MNV1_BIN")" --weights "$(basename "$WEIGHTS")" --variant $VARIANT --threads 1 \
        "$@"
}
say "spark-submit --master local[2]"
submit --stats "$WORK/stats1.json"

say "rerun: every shard's output exists, so nothing is redone and nothing changes"
(cd "$WORK/out" && find embed classify -type f | sort | xargs sha256sum) > "$WORK/sums1"
submit --stats "$WORK/stats2.json"
(cd "$WORK/out" && find embed classify -type f | sort | xargs sha256sum) > "$WORK/sums2"
cmp "$WORK/sums1" "$WORK/sums2" || { echo "FAIL: the rerun changed the outputs" >&2; exit 1; }
"$PY" - "$WORK/stats2.json" <<'EOF'
import json, sys
tasks = json.load(open(sys.argv[1]))["tasks"]
bad = [t for t in tasks if not t["existed"] or t["rc"] != 0]
if bad:
    sys.exit(f"FAIL: rerun tasks without an existing output or with an error: {bad}")
print(f"rerun: {len(tasks)} runs, all found their output and exited 0, "
      f"{sum(t['wall_s'] for t in tasks):.2f} s of mnv1 in all")
EOF

say "check_spark.py"
"$PY" "$HERE/check_spark.py" "$WORK/shards/*.tar" --out "$WORK/out" --work "$WORK/single" \
    --mnv1 "$MNV1_BIN" --weights "$WEIGHTS" --variant $VARIANT --threads 2

say "test-spark: OK"
