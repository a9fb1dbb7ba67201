//! `report.html` of a fine-tuned model directory: curves, confusion matrix, per-class figures,
//! the validation images the model got wrong, and the run's settings, in one self-contained file.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use rayon::prelude::*;

use super::html::{self, duration, esc, percent, TRAIN_COLOUR, VALIDATION_COLOUR};
use super::svg::{confusion_heat_map, line_chart, Series};
use super::thumbnail;
use crate::output::AtomicFile;
use crate::train::data::Example;
use crate::train::manifest::{Figures, Manifest};
use crate::train::predictions::Predicted;

pub const REPORT_FILE: &str = "report.html";

/// At most this many mistakes are shown (the most confident first), so the file stays small.
pub const MISTAKES_SHOWN: usize = 60;
const THUMB_SIDE: u32 = 160;

/// What the report is made from: the manifest (settings, history) and the final predictions
/// for the validation images (in the order of `validation`).
pub struct ReportInput<'a> {
    pub manifest: &'a Manifest,
    pub validation: &'a [Example],
    pub predictions: &'a [Predicted],
    pub max_pixels: u64,
}

/// `counts[true][predicted]`.
pub fn confusion(classes: usize, predictions: &[Predicted]) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; classes]; classes];
    for p in predictions {
        if p.label < classes && p.predicted < classes {
            m[p.label][p.predicted] += 1;
        }
    }
    m
}

/// Precision, recall and support of class `c`; None where undefined (nothing predicted as or
/// labelled `c`).
pub fn class_figures(m: &[Vec<usize>], c: usize) -> (Option<f64>, Option<f64>, usize) {
    let tp = m[c][c];
    let support: usize = m[c].iter().sum();
    let predicted: usize = m.iter().map(|row| row[c]).sum();
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    (ratio(tp, predicted), ratio(tp, support), support)
}

fn opt_percent(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_string(), percent)
}

fn charts(m: &Manifest) -> String {
    let train = |f: fn(&Figures) -> f64| -> Vec<(f64, f64)> {
        m.history
            .iter()
            .map(|e| (e.epoch as f64, f(&e.train)))
            .collect()
    };
    // Validation starts at epoch 0: the untrained head.
    let validation = |f: fn(&Figures) -> f64| -> Vec<(f64, f64)> {
        m.initial_validation
            .iter()
            .map(|v| (0.0, f(v)))
            .chain(
                m.history
                    .iter()
                    .filter_map(|e| e.validation.map(|v| (e.epoch as f64, f(&v)))),
            )
            .collect()
    };
    let series = |f: fn(&Figures) -> f64| {
        let mut s = vec![Series {
            name: "training",
            colour: TRAIN_COLOUR,
            points: train(f),
        }];
        let v = validation(f);
        if !v.is_empty() {
            s.push(Series {
                name: "validation",
                colour: VALIDATION_COLOUR,
                points: v,
            });
        }
        s
    };
    format!(
        "<section><h2>Loss and accuracy per epoch</h2><div class=\"row\">{}{}</div>\
         <p class=\"note\">Training figures are the means over each epoch's batches, measured \
         while the head learns (with dropout and augmentation where set); validation is measured \
         after each epoch, and at epoch 0 before the first step.</p></section>\n",
        line_chart(
            "Loss",
            "epoch",
            "cross-entropy loss",
            &series(|f| f.loss),
            0.0,
            None
        ),
        line_chart(
            "Accuracy",
            "epoch",
            "accuracy",
            &series(|f| f.accuracy),
            0.0,
            Some(1.0)
        ),
    )
}

fn epoch_table(m: &Manifest) -> String {
    let cells = |f: Option<Figures>| {
        f.map_or_else(
            || "<td>–</td><td>–</td>".to_string(),
            |f| format!("<td>{:.4}</td><td>{}</td>", f.loss, percent(f.accuracy)),
        )
    };
    let mut s = String::from(
        "<section><h2>Epochs</h2><table class=\"epochs\"><thead><tr><th>epoch</th>\
         <th>training loss</th><th>training accuracy</th><th>validation loss</th>\
         <th>validation accuracy</th><th>time</th></tr></thead><tbody>\n",
    );
    if let Some(v) = m.initial_validation {
        let _ = writeln!(
            s,
            "<tr data-epoch=\"0\"><td>0 (before training)</td><td>–</td><td>–</td>{}<td>–</td></tr>",
            cells(Some(v))
        );
    }
    for e in &m.history {
        let _ = writeln!(
            s,
            "<tr data-epoch=\"{0}\"><td>{0}</td>{1}{2}<td>{3}</td></tr>",
            e.epoch,
            cells(Some(e.train)),
            cells(e.validation),
            duration(e.seconds)
        );
    }
    s.push_str("</tbody></table></section>\n");
    s
}

fn confusion_section(m: &Manifest, counts: &[Vec<usize>]) -> String {
    let mut s = format!(
        "<section><h2>Validation: confusion matrix and per-class figures</h2><div class=\"row\">\
         <div>{}</div><div><table class=\"classes\"><thead><tr><th>class</th><th>precision</th>\
         <th>recall</th><th>support</th></tr></thead><tbody>\n",
        confusion_heat_map(&m.classes, counts)
    );
    for (c, name) in m.classes.iter().enumerate() {
        let (precision, recall, support) = class_figures(counts, c);
        let _ = writeln!(
            s,
            "<tr><td class=\"class\">{}</td><td>{}</td><td>{}</td><td>{support}</td></tr>",
            esc(name),
            opt_percent(precision),
            opt_percent(recall)
        );
    }
    s.push_str(
        "</tbody></table><p class=\"note\">Rows of the matrix: true class; columns: predicted \
         class; shade: share of the true class. Precision: of the images predicted as a class, \
         how many are; recall: of a class's images, how many were found.</p></div></div></section>\n",
    );
    s
}

fn mistakes(input: &ReportInput) -> String {
    let classes = &input.manifest.classes;
    let mut wrong: Vec<(&Example, &Predicted)> = input
        .validation
        .iter()
        .zip(input.predictions)
        .filter(|(_, p)| p.label != p.predicted)
        .collect();
    wrong.sort_by(|a, b| b.1.probability.total_cmp(&a.1.probability));
    let total = wrong.len();
    wrong.truncate(MISTAKES_SHOWN);
    // Decoding and shrinking the photos is the slow part: in parallel.
    let thumbs: Vec<Result<Vec<u8>, String>> = wrong
        .par_iter()
        .map(|(e, _)| {
            let bytes = std::fs::read(&e.path).map_err(|err| err.to_string())?;
            thumbnail::from_file_bytes(&bytes, 0, THUMB_SIDE, input.max_pixels)
        })
        .collect();
    let mut s = format!(
        "<section><h2>Validation images it got wrong ({total} of {})</h2>",
        input.predictions.len()
    );
    if total == 0 {
        s.push_str("<p>None.</p></section>\n");
        return s;
    }
    if total > MISTAKES_SHOWN {
        let _ = write!(
            s,
            "<p class=\"note\">The {MISTAKES_SHOWN} most confident mistakes are shown.</p>"
        );
    }
    s.push_str("<div class=\"grid\">\n");
    let name = |i: usize| classes.get(i).map_or("?", String::as_str);
    for ((e, p), thumb) in wrong.iter().zip(thumbs) {
        let file = e.path.display().to_string();
        let img = match thumb {
            Ok(jpeg) => format!(
                "<img class=\"thumb\" alt=\"\" src=\"{}\">",
                thumbnail::data_uri(&jpeg)
            ),
            Err(reason) => format!("<div class=\"thumb\">{}</div>", esc(&reason)),
        };
        let _ = writeln!(
            s,
            "<figure class=\"mistake\" title=\"{}\">{img}<figcaption>\
             <span class=\"right\">true: {}</span><br><span class=\"wrong\">predicted: {} \
             ({})</span><span class=\"name\">{}</span></figcaption></figure>",
            esc(&file),
            esc(name(p.label)),
            esc(name(p.predicted)),
            percent(p.probability as f64),
            esc(&e
                .path
                .file_name()
                .map_or(file.clone(), |n| n.to_string_lossy().into_owned()))
        );
    }
    s.push_str("</div></section>\n");
    s
}

fn settings(m: &Manifest) -> String {
    let t = &m.training;
    let optimizer = match t.momentum {
        Some(mom) => format!("{} (momentum {mom})", t.optimizer),
        None => t.optimizer.clone(),
    };
    let backbone = if t.train_backbone {
        "trained (batch norm in train mode)"
    } else {
        "frozen (inference mode; only the new head trained)"
    };
    let per_epoch: Vec<f64> = m.history.iter().map(|e| e.seconds).collect();
    let mean = per_epoch.iter().sum::<f64>() / per_epoch.len().max(1) as f64;
    let rows: Vec<(&str, String)> = vec![
        (
            "variant",
            format!("{} ({}x{} input)", m.variant, m.input_size, m.input_size),
        ),
        ("classes", m.classes.len().to_string()),
        (
            "images",
            format!(
                "{} training, {} validation (split {})",
                t.train_images, t.validation_images, t.validation_split
            ),
        ),
        ("epochs", t.epochs.to_string()),
        ("batch size", t.batch_size.to_string()),
        ("learning rate", t.learning_rate.to_string()),
        ("optimizer", optimizer),
        ("backbone", backbone.to_string()),
        (
            "BN momentum",
            if t.train_backbone {
                t.bn_momentum.to_string()
            } else {
                format!("{} (unused: backbone frozen)", t.bn_momentum)
            },
        ),
        ("dropout", t.dropout.to_string()),
        (
            "augmentation",
            if t.augment {
                "random crop (70-100% per side) and left-right flip"
            } else {
                "none"
            }
            .to_string(),
        ),
        ("seed", t.seed.to_string()),
        (
            "time per epoch",
            format!(
                "{} mean ({})",
                duration(mean),
                per_epoch
                    .iter()
                    .map(|s| duration(*s))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        ("total time", duration(t.seconds)),
        (
            "base weights",
            format!("{} ({})", t.weights_source, t.weights_format),
        ),
    ];
    let mut s = String::from("<section><h2>Settings</h2><table class=\"settings\"><tbody>\n");
    for (k, v) in rows {
        let _ = writeln!(s, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v));
    }
    s.push_str("</tbody></table></section>\n");
    s
}

fn kpis(m: &Manifest) -> String {
    let kpi = |label: &str, value: String| {
        format!("<div class=\"kpi\"><span>{label}</span><b>{value}</b></div>")
    };
    let mut s = String::from("<div class=\"kpis\">");
    if let Some(f) = m.final_validation {
        s += &kpi("validation accuracy", percent(f.accuracy));
        s += &kpi("validation loss", format!("{:.4}", f.loss));
    }
    if let Some(f) = m.initial_validation {
        s += &kpi("before training", percent(f.accuracy));
    }
    if let Some(e) = m.history.last() {
        s += &kpi("training accuracy", percent(e.train.accuracy));
    }
    s += &kpi("training time", duration(m.training.seconds));
    s.push_str("</div>\n");
    s
}

/// The whole page.
pub fn render(input: &ReportInput) -> String {
    let m = input.manifest;
    let t = &m.training;
    let mut s = html::page_start(
        &format!("Fine-tuned MobileNet V1 {}", m.variant),
        &format!(
            "{} classes · {} epochs · backbone {} · written by mnv1 finetune",
            m.classes.len(),
            t.epochs,
            if t.train_backbone {
                "trained"
            } else {
                "frozen"
            }
        ),
    );
    s += &kpis(m);
    s += &charts(m);
    if input.predictions.is_empty() {
        s.push_str(
            "<section><h2>Validation</h2><p>No validation set (--validation-split 0).</p></section>\n",
        );
    } else {
        s += &confusion_section(m, &confusion(m.classes.len(), input.predictions));
        s += &mistakes(input);
    }
    s += &epoch_table(m);
    s += &settings(m);
    s.push_str(html::PAGE_END);
    s
}

/// Writes `dir/report.html` atomically: an interrupted or failed run leaves no partial page.
pub fn write(dir: &Path, input: &ReportInput) -> io::Result<()> {
    let page = render(input);
    let mut f = AtomicFile::create(&dir.join(REPORT_FILE))?;
    f.write_all(page.as_bytes())?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(label: usize, predicted: usize) -> Predicted {
        Predicted {
            label,
            predicted,
            probability: 0.5,
        }
    }

    #[test]
    fn confusion_and_per_class_figures() {
        // Class 0: 3 images, 2 right, 1 taken for class 1; class 1: 1 image, right; class 2:
        // no image and nothing predicted as it (precision and recall undefined).
        let preds = [p(0, 0), p(0, 0), p(0, 1), p(1, 1)];
        let m = confusion(3, &preds);
        assert_eq!(m, [vec![2, 1, 0], vec![0, 1, 0], vec![0, 0, 0]]);
        assert_eq!(class_figures(&m, 0), (Some(1.0), Some(2.0 / 3.0), 3));
        assert_eq!(class_figures(&m, 1), (Some(0.5), Some(1.0), 1));
        assert_eq!(class_figures(&m, 2), (None, None, 0));
    }
}
