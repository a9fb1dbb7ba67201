//! Inline SVG: line charts with labelled axes, and the confusion matrix as a heat map.

use std::fmt::Write;

use super::html::esc;

/// One line of a chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub colour: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// About `n` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten).
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick value with as many decimals as its step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

const W: f64 = 520.0;
const H: f64 = 300.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 50.0;

/// A line chart of `series` over integer x values (epochs), with gridlines, ticks, axis labels,
/// a legend, and a tooltip (`<title>`) on every point. The y axis spans [y_lo, y_hi], or up
/// to a round value above the largest point when `y_hi` is None.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_lo: f64,
    y_hi: Option<f64>,
) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let finite = |v: &f64| v.is_finite();
    let x_min = all()
        .map(|p| p.0)
        .filter(finite)
        .fold(f64::INFINITY, f64::min);
    let x_max = all()
        .map(|p| p.0)
        .filter(finite)
        .fold(f64::NEG_INFINITY, f64::max);
    let (x_min, x_max) = if x_min.is_finite() {
        (x_min, x_max.max(x_min + 1.0))
    } else {
        (0.0, 1.0)
    };
    let y_hi = y_hi.unwrap_or_else(|| {
        let top = all()
            .map(|p| p.1)
            .filter(finite)
            .fold(y_lo + 1e-3, f64::max);
        // Headroom, then the next tick.
        let t = ticks(y_lo, top * 1.05, 5);
        let step = if t.len() > 1 { t[1] - t[0] } else { top };
        (top * 1.05 / step).ceil() * step
    });
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * pw;
    let sy = |y: f64| TOP + ph - (y.clamp(y_lo, y_hi) - y_lo) / (y_hi - y_lo) * ph;

    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    let _ = write!(
        s,
        "<text x=\"{LEFT}\" y=\"20\" font-size=\"14\" font-weight=\"600\" fill=\"#202124\">{}</text>",
        esc(title)
    );
    // Horizontal gridlines and y ticks.
    let yt = ticks(y_lo, y_hi, 5);
    let y_step = if yt.len() > 1 { yt[1] - yt[0] } else { 1.0 };
    for v in &yt {
        let y = sy(*v);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e6e8eb\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5f6368\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            tick_label(*v, y_step)
        );
    }
    // x ticks at whole epochs, at most about ten.
    let xt: Vec<f64> = ticks(x_min, x_max, 10)
        .into_iter()
        .filter(|v| v.fract() == 0.0)
        .collect();
    for v in &xt {
        let x = sx(*v);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#9aa0a6\"/>\
             <text x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#5f6368\">{v}</text>",
            TOP + ph,
            TOP + ph + 4.0,
            TOP + ph + 17.0
        );
    }
    // Axes and their labels.
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"#9aa0a6\"/>\
         <line x1=\"{LEFT}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#9aa0a6\"/>\
         <text x=\"{:.1}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#3c4043\">{}</text>\
         <text transform=\"translate(16 {:.1}) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\" fill=\"#3c4043\">{}</text>",
        TOP + ph,
        W - RIGHT,
        TOP + ph,
        TOP + ph,
        LEFT + pw / 2.0,
        H - 10.0,
        esc(x_label),
        TOP + ph / 2.0,
        esc(y_label)
    );
    // Lines, points with tooltips, legend.
    for (i, se) in series.iter().enumerate() {
        let pts: Vec<String> = se
            .points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            se.colour,
            pts.join(" ")
        );
        for &(x, y) in se.points.iter().filter(|p| p.1.is_finite()) {
            let _ = write!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{} {}: epoch {x}, {y:.4}</title></circle>",
                sx(x),
                sy(y),
                se.colour,
                esc(se.name),
                esc(title)
            );
        }
        let lx = W - RIGHT - 110.0;
        let ly = 14.0 + i as f64 * 15.0;
        let _ = write!(
            s,
            "<line x1=\"{lx}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{}\" stroke-width=\"2.5\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#3c4043\">{}</text>",
            lx + 18.0,
            se.colour,
            lx + 23.0,
            ly + 4.0,
            esc(se.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// Class names longer than this are cut in the heat map's margins (whole in tooltips and tables).
const LABEL_CHARS: usize = 24;

fn short(name: &str) -> String {
    if name.chars().count() <= LABEL_CHARS {
        name.to_string()
    } else {
        let cut: String = name.chars().take(LABEL_CHARS - 1).collect();
        format!("{cut}…")
    }
}

/// White to dark blue as `t` goes 0 to 1.
fn blue(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(247.0, 8.0),
        mix(251.0, 48.0),
        mix(255.0, 107.0)
    )
}

/// The confusion matrix `counts[true][predicted]` as a heat map: each cell shaded by its share of
/// the true class (so the diagonal reads as recall), with its count, and class names along both
/// axes.
pub fn confusion_heat_map(classes: &[String], counts: &[Vec<usize>]) -> String {
    let k = classes.len().max(1);
    let cell = (520.0 / k as f64).clamp(16.0, 56.0);
    let longest = classes
        .iter()
        .map(|c| short(c).chars().count())
        .max()
        .unwrap_or(1) as f64;
    let label = 12.0 + longest * 6.6;
    let (left, top) = (label + 26.0, label * 0.72 + 34.0);
    let (gw, gh) = (cell * k as f64, cell * k as f64);
    let (w, h) = (left + gw + label * 0.72 + 10.0, top + gh + 12.0);
    let font = (cell * 0.36).clamp(9.0, 13.0);

    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"confusion\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w:.0} {h:.0}\" width=\"{w:.0}\" height=\"{h:.0}\" role=\"img\" aria-label=\"confusion matrix\">\
         <text x=\"{:.1}\" y=\"14\" font-size=\"12\" text-anchor=\"middle\" fill=\"#3c4043\">predicted class</text>\
         <text transform=\"translate(12 {:.1}) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\" fill=\"#3c4043\">true class</text>",
        left + gw / 2.0,
        top + gh / 2.0
    );
    for (i, name) in classes.iter().enumerate() {
        let c = i as f64 * cell + cell / 2.0;
        let _ = write!(
            s,
            "<text class=\"class\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#3c4043\"><title>{}</title>{}</text>\
             <text class=\"class\" transform=\"translate({:.1} {:.1}) rotate(-45)\" font-size=\"11\" fill=\"#3c4043\"><title>{}</title>{}</text>",
            left - 6.0,
            top + c + 4.0,
            esc(name),
            esc(&short(name)),
            left + c,
            top - 6.0,
            esc(name),
            esc(&short(name))
        );
    }
    for (t, row) in counts.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (p, &n) in row.iter().enumerate() {
            let share = if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            };
            let (x, y) = (left + p as f64 * cell, top + t as f64 * cell);
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell:.1}\" height=\"{cell:.1}\" fill=\"{}\" stroke=\"#fff\">\
                 <title>true {}, predicted {}: {n} ({:.1}% of {})</title></rect>",
                blue(share),
                esc(&classes[t]),
                esc(&classes[p]),
                share * 100.0,
                esc(&classes[t])
            );
            let _ = write!(
                s,
                "<text class=\"count\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"{font:.0}\" text-anchor=\"middle\" fill=\"{}\"{}>{n}</text>",
                x + cell / 2.0,
                y + cell / 2.0 + font * 0.35,
                if share > 0.5 { "#fff" } else { "#3c4043" },
                if n == 0 { " opacity=\"0.45\"" } else { "" }
            );
        }
    }
    let _ = write!(
        s,
        "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{gw:.1}\" height=\"{gh:.1}\" fill=\"none\" stroke=\"#9aa0a6\"/></svg>"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1.0, 5),
            [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(
            ticks(1.0, 10.0, 10),
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
        );
        assert_eq!(ticks(0.0, 100.0, 10).len(), 11);
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(20.0, 5.0), "20");
    }

    #[test]
    fn chart_has_axes_labels_and_one_point_per_value() {
        let svg = line_chart(
            "loss",
            "epoch",
            "cross-entropy",
            &[
                Series {
                    name: "train",
                    colour: "#000",
                    points: vec![(1.0, 0.9), (2.0, 0.5), (3.0, 0.3)],
                },
                Series {
                    name: "<validation>",
                    colour: "#f00",
                    points: vec![(0.0, 1.1), (1.0, 0.8)],
                },
            ],
            0.0,
            None,
        );
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains(">epoch</text>") && svg.contains(">cross-entropy</text>"));
        assert!(svg.contains("&lt;validation&gt;") && !svg.contains("<validation>"));
    }

    #[test]
    fn heat_map_has_every_count_and_escaped_names() {
        let classes = vec!["a".to_string(), "<script>\"b\"".to_string()];
        let svg = confusion_heat_map(&classes, &[vec![3, 1], vec![0, 7]]);
        let counts: Vec<&str> = svg
            .split("<text class=\"count\"")
            .skip(1)
            .map(|t| t.split('>').nth(1).unwrap().split('<').next().unwrap())
            .collect();
        assert_eq!(counts, ["3", "1", "0", "7"]);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;&quot;b&quot;"));
    }
}
