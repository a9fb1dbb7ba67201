//! What both HTML pages share: escaping of everything that comes from outside (class names,
//! file names, failure reasons), the page head with its inline style sheet (no script, no font
//! or style fetched: the file reads the same offline), and number formatting.

use std::borrow::Cow;

/// Text or attribute value: `&`, `<`, `>`, `"`, `'` and `/` escaped, safe in both places.
pub fn esc(s: &str) -> Cow<'_, str> {
    html_escape::encode_safe(s)
}

/// Colours of the two runs in charts and tables (colour-blind safe pair).
pub(crate) const TRAIN_COLOUR: &str = "#1f77b4";
pub(crate) const VALIDATION_COLOUR: &str = "#e8710a";

const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: #202124; background: #f6f7f9; }
header { background: #1a237e; color: #fff; padding: 18px 28px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 4px 0 0; opacity: .85; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 28px 40px; }
section { background: #fff; border: 1px solid #e0e3e8; border-radius: 8px; padding: 16px 20px; margin: 0 0 18px; }
h2 { font-size: 16px; margin: 0 0 12px; font-weight: 600; }
.row { display: flex; flex-wrap: wrap; gap: 18px; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 0 0 18px; }
.kpi { background: #fff; border: 1px solid #e0e3e8; border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.kpi b { display: block; font-size: 22px; font-weight: 600; }
.kpi span { color: #5f6368; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eceef1; text-align: right; }
th { font-weight: 600; color: #5f6368; font-size: 12px; }
td:first-child, th:first-child { text-align: left; }
table.settings td:first-child { color: #5f6368; }
table.settings td { text-align: left; }
svg text { font-family: inherit; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); gap: 12px; }
figure { margin: 0; background: #fff; border: 1px solid #e0e3e8; border-radius: 6px; padding: 8px; overflow: hidden; }
figure .thumb { display: block; width: 100%; height: 120px; object-fit: contain; background: #eef0f3; border-radius: 4px; }
figure div.thumb { display: flex; align-items: center; justify-content: center; color: #80868b; font-size: 12px; }
figcaption { font-size: 12px; margin-top: 6px; word-break: break-word; }
figcaption .name { color: #5f6368; display: block; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.bar { display: grid; grid-template-columns: 1fr auto; column-gap: 6px; margin: 3px 0 0; font-size: 11.5px; line-height: 1.3; }
.bar span { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.bar b { font-weight: 500; text-align: right; font-variant-numeric: tabular-nums; color: #5f6368; }
.bar i { grid-column: 1 / 3; display: block; height: 4px; background: #e8eaf6; border-radius: 2px; overflow: hidden; }
.bar i s { display: block; height: 100%; background: #5c6bc0; }
.row > div:last-child { flex: 1 1 320px; }
.wrong { color: #c5221f; }
.right { color: #188038; }
figure.failed { border-color: #f5c2c0; background: #fdf3f2; }
.reason { color: #c5221f; font-size: 12px; }
.note { color: #5f6368; font-size: 12px; }
ul.failures li { margin: 2px 0; }
"#;

/// `<!DOCTYPE html>` up to the opening `<main>`, with the heading and a subtitle.
pub(crate) fn page_start(title: &str, subtitle: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"mnv1 {}\">\n<title>{}</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<header><h1>{}</h1><p>{}</p></header>\n<main>\n",
        env!("CARGO_PKG_VERSION"),
        esc(title),
        esc(title),
        esc(subtitle)
    )
}

pub(crate) const PAGE_END: &str = "</main>\n</body>\n</html>\n";

/// A fraction as a percentage with one decimal.
pub(crate) fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Seconds as `1.23 s`, `2 min 05 s` or `1 h 02 min`.
pub(crate) fn duration(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.2} s")
    } else if s < 3600.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        let e = esc(r#"<script>alert("x")</script> & 'y'"#);
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
        assert_eq!(esc("a<b"), "a&lt;b");
        assert_eq!(esc("a&b"), "a&amp;b");
        assert_eq!(esc("plain"), "plain");
        let head = page_start("<t>", "\"s\"");
        assert!(head.contains("<title>&lt;t&gt;</title>"), "{head}");
        assert!(!head.contains("\"s\""));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(1.234), "1.23 s");
        assert_eq!(duration(125.0), "2 min 05 s");
        assert_eq!(duration(3720.0), "1 h 02 min");
    }
}
