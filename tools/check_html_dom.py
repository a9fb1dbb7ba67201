#!/usr/bin/env python3
"""Checks the DOM that headless Chromium built (`chromium --headless --dump-dom`) from mnv1's
HTML pages. Standard library only.

  report DOM MODEL_DIR          report.html of `mnv1 finetune`: every class name in the
                                per-class table, every epoch (0 = before training) in the epoch
                                table, the confusion counts summing to the validation images,
                                one card per mistake shown
  sheet DOM EXPECTED FAILED     contact sheet of `mnv1 classify --format html`: one card per
                                input in input order (EXPECTED: the result names, one a line),
                                one thumbnail per classified input, FAILED failure cards and as
                                many entries in the failure list
Both: no <script> element, no on* attribute, nothing loaded from the network.
"""
import json
import os
import sys
from html.parser import HTMLParser


class Dom(HTMLParser):
    """Elements as (tag, attrs, text directly and indirectly inside), in document order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements, self.stack = [], []

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": "", "parents": [e["tag"] + "." + e["attrs"].get("class", "") for e in self.stack]}
        self.elements.append(el)
        if tag not in ("img", "br", "meta", "link", "input", "hr", "circle", "line", "rect", "polyline"):
            self.stack.append(el)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i]["tag"] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        for el in self.stack:
            el["text"] += data

    def select(self, tag=None, cls=None, within=None):
        out = []
        for e in self.elements:
            if tag and e["tag"] != tag:
                continue
            if cls and cls not in e["attrs"].get("class", "").split():
                continue
            if within and not any(p.startswith(within) for p in e["parents"]):
                continue
            out.append(e)
        return out


def parse(path):
    d = Dom()
    with open(path, encoding="utf-8") as f:
        d.feed(f.read())
    return d


def common(d, problems):
    if d.select("script"):
        problems.append("a <script> element is in the DOM (unescaped markup?)")
    for e in d.elements:
        for k, v in e["attrs"].items():
            if k.startswith("on"):
                problems.append(f"<{e['tag']} {k}=...> is in the DOM (unescaped markup?)")
            if k in ("src", "href") and v and v.split(":")[0] in ("http", "https", "ftp"):
                problems.append(f"<{e['tag']} {k}={v[:60]}> loads from the network")
        if e["tag"] == "link":
            problems.append("a <link> element (external style sheet or font)")


def check_report(dom, model_dir):
    with open(os.path.join(model_dir, "manifest.json")) as f:
        m = json.load(f)
    d, problems = parse(dom), []
    common(d, problems)
    shown = [e["text"] for e in d.select("td", "class", within="table.classes")]
    if shown != m["classes"]:
        problems.append(f"per-class table has {shown}, manifest has {m['classes']}")
    epochs = [int(e["attrs"]["data-epoch"]) for e in d.select("tr") if "data-epoch" in e["attrs"]]
    want = ([0] if m["initial_validation"] else []) + [e["epoch"] for e in m["history"]]
    if epochs != want:
        problems.append(f"epoch rows {epochs}, manifest has {want}")
    counts = [int(e["text"]) for e in d.select("text", "count")]
    n_val = m["training"]["validation_images"]
    k = len(m["classes"])
    if len(counts) != k * k or sum(counts) != n_val:
        problems.append(f"confusion matrix: {len(counts)} cells summing to {sum(counts)}, want {k * k} summing to {n_val}")
    diagonal = sum(counts[i * k + i] for i in range(k)) if len(counts) == k * k else -1
    accuracy = m["final_validation"]["accuracy"] if m["final_validation"] else None
    if accuracy is not None and abs(diagonal - accuracy * n_val) > 1e-6:
        problems.append(f"confusion diagonal {diagonal} != final accuracy {accuracy} x {n_val}")
    mistakes = d.select("figure", "mistake")
    thumbs = [e for e in d.select("img", "thumb", within="figure.mistake") if e["attrs"].get("src", "").startswith("data:image/jpeg;base64,")]
    if len(mistakes) != min(60, n_val - diagonal) or len(thumbs) != len(mistakes):
        problems.append(f"{len(mistakes)} mistake cards with {len(thumbs)} embedded thumbnails; {n_val - diagonal} mistakes")
    svgs = d.select("svg", "chart")
    if len(svgs) != 2:
        problems.append(f"{len(svgs)} line charts, want 2")
    print(f"report: {len(shown)} classes, epochs {epochs}, {len(counts)} confusion cells summing to "
          f"{sum(counts)}, {len(mistakes)} mistakes shown, {len(svgs)} charts")
    return problems


def check_sheet(dom, expected_file, failed):
    with open(expected_file, encoding="utf-8") as f:
        expected = [line.rstrip("\n") for line in f if line.strip()]
    d, problems = parse(dom), []
    common(d, problems)
    cards = d.select("figure", "item")
    names = [e["attrs"].get("title") for e in d.select("span", "name", within="figure.item")]
    if names != expected:
        problems.append(f"card names (in order) {names[:5]}..., expected {expected[:5]}... ({len(names)} vs {len(expected)})")
    failed_cards = d.select("figure", "failed")
    ok_cards = len(cards) - len(failed_cards)
    thumbs = [e for e in d.elements if "thumb" in e["attrs"].get("class", "").split()
              and any(p.startswith("figure.item") and "failed" not in p for p in e["parents"])]
    embedded = [e for e in thumbs if e["attrs"].get("src", "").startswith("data:")]
    linked = [e for e in thumbs if e["tag"] == "img" and not e["attrs"]["src"].startswith("data:")]
    if len(thumbs) != ok_cards:
        problems.append(f"{len(thumbs)} thumbnails for {ok_cards} classified inputs")
    if len(failed_cards) != failed:
        problems.append(f"{len(failed_cards)} failure cards, expected {failed}")
    listed = d.select("li", within="ul.failures")
    if len(listed) != failed:
        problems.append(f"{len(listed)} entries in the failure list, expected {failed}")
    print(f"sheet: {len(cards)} cards in input order, {len(thumbs)} thumbnails ({len(embedded)} embedded, "
          f"{len(linked)} linked), {len(failed_cards)} failures listed with their reason")
    return problems


def main():
    kind = sys.argv[1]
    problems = check_report(*sys.argv[2:4]) if kind == "report" else check_sheet(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
