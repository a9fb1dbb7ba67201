#!/usr/bin/env bash
# `make check-html`: mnv1's HTML pages in a real browser. Installs Debian's chromium when it is
# missing (apt-get; needs root), then with real third-party data (DATA: the 0.25_128 .tflite and
# the 200 ImageNet photos, see README):
#   1. finetune on four coarse classes of the photos (tools/make_finetune_task.py), with
#      --summaries-dir; report.html rendered headless to a screenshot and its DOM checked;
#   2. finetune on two classes whose folder and file names hold HTML markup and quotes;
#      the DOM must hold them as text (no <script>, no on* attribute);
#   3. classify --out sheet.html on 24 photos, a broken file and a file named with markup,
#      thumbnails embedded for the first 16 and linked after; DOM: one card per input in input
#      order, one thumbnail per classified input, the failure listed;
#   4. the event files read by TensorBoard's EventAccumulator and compared with manifest.json
#      (when $TB_PYTHON has tensorboard).
# Screenshots go to $SHOTS (docs/ by default, as shown in README).
# usage: tools/check_html.sh DATA MNV1_BINARY [SHOTS]
set -euo pipefail
DATA=${1:?DATA directory}
MNV1=${2:?mnv1 binary}
SHOTS=${3:-docs}
TB_PYTHON=${TB_PYTHON:-/tmp/venv-i16/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
PHOTOS="$DATA/imagenet-sample-200"
TFLITE="$DATA/weights/mobilenet_v1_0.25_128.tflite"

if ! command -v chromium >/dev/null; then
	echo "check-html: installing Debian's chromium" >&2
	apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Headless Chromium with nothing that reaches out: no sync, no updates, a fresh profile.
chrome() {
	timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
		--disable-component-update --disable-sync --no-first-run --hide-scrollbars \
		--user-data-dir="$(mktemp -d -p "$WORK")" "$@" 2>/dev/null
}
render() { # page.html shot.png width height
	chrome --dump-dom "file://$1" >"$1.dom"
	chrome --screenshot="$2" --window-size="$3,$4" "file://$1" >/dev/null
	echo "rendered $1 -> $2 ($(stat -c %s "$2") bytes), DOM $(stat -c %s "$1.dom") bytes"
}

echo "== 1. finetune report (four coarse ImageNet classes, real 0.25_128 weights)"
python3 "$HERE/make_finetune_task.py" "$PHOTOS" "$WORK/coarse4" >/dev/null
"$MNV1" -q finetune "$WORK/coarse4" --variant 025_128 --weights "$TFLITE" --epochs 8 \
	--batch-size 16 --learning-rate 0.01 --augment --seed 3 --out "$WORK/model" \
	--summaries-dir "$WORK/summaries"
render "$WORK/model/report.html" "$WORK/report.png" 1200 2200
python3 "$HERE/check_html_dom.py" report "$WORK/model/report.html.dom" "$WORK/model"

echo "== 2. class and file names with markup and quotes"
odd1='<img src=x onerror=alert(1)>'
odd2='"quoted" & <script>alert(2)<'
mkdir -p "$WORK/odd/$odd1" "$WORK/odd/$odd2"
i=0
for f in $(ls "$PHOTOS"/*.JPEG | sed -n 1,12p); do
	if [ $((i % 2)) = 0 ]; then d=$odd1; else d=$odd2; fi
	ln -s "$f" "$WORK/odd/$d/$i <b>\"x\" 'y'.jpg"
	i=$((i + 1))
done
"$MNV1" -q finetune "$WORK/odd" --variant 025_128 --weights "$TFLITE" --epochs 2 \
	--validation-split 0.5 --out "$WORK/odd-model"
render "$WORK/odd-model/report.html" "$WORK/odd-report.png" 1200 900
python3 "$HERE/check_html_dom.py" report "$WORK/odd-model/report.html.dom" "$WORK/odd-model"

echo "== 3. contact sheet"
mkdir -p "$WORK/in"
ls "$PHOTOS"/*.JPEG | sed -n 1,24p >"$WORK/list"
ln -s "$(sed -n 5p "$WORK/list")" "$WORK/in/<script>alert(\"x\")<.jpg"
echo "not an image" >"$WORK/in/broken.jpg"
{ head -3 "$WORK/list"; echo "$WORK/in/broken.jpg"; echo "$WORK/in/<script>alert(\"x\")<.jpg"; tail -n +4 "$WORK/list"; } >"$WORK/inputs"
cp "$WORK/inputs" "$WORK/expected"
set +e
"$MNV1" -q classify - --variant 025_128 --weights "$TFLITE" -k 3 --sheet-embed 16 \
	--out "$WORK/sheet.html" <"$WORK/inputs"
rc=$?
set -e
[ "$rc" = 1 ] || { echo "classify exited $rc, expected 1 (one failed input)" >&2; exit 1; }
render "$WORK/sheet.html" "$WORK/sheet.png" 1200 1560
python3 "$HERE/check_html_dom.py" sheet "$WORK/sheet.html.dom" "$WORK/expected" 1

echo "== 4. TensorBoard's reader on the event files"
if "$TB_PYTHON" -c 'import tensorboard' 2>/dev/null; then
	"$TB_PYTHON" "$HERE/check_tfevents.py" "$WORK/summaries" "$WORK/model"
else
	echo "skipped: no tensorboard in $TB_PYTHON (python3 -m venv /tmp/venv-i16 && /tmp/venv-i16/bin/pip install tensorboard)"
fi

mkdir -p "$SHOTS"
# 256-colour PNGs (pngquant, when installed) are about a third of the size.
for pair in report.png:report.png sheet.png:contact_sheet.png; do
	if command -v pngquant >/dev/null; then
		pngquant --quality 70-90 --speed 1 --force --output "$SHOTS/${pair#*:}" "$WORK/${pair%%:*}"
	else
		cp "$WORK/${pair%%:*}" "$SHOTS/${pair#*:}"
	fi
done
echo "check-html: all checks passed; screenshots in $SHOTS/report.png and $SHOTS/contact_sheet.png"
