//! A bar chart drawn on the server as SVG: points issued and redeemed per
//! day. Colours come from the stylesheet (`.bar-issued`, `.bar-redeemed`);
//! each bar has a `<title>` with its number, and the page shows the same
//! numbers in a table.

use crate::i18n::{text, Lang};
use std::fmt::Write;

/// One day's bars.
pub struct Day {
    /// The day as shown (its label, in the page's language).
    pub label: String,
    pub issued: i64,
    pub redeemed: i64,
}

const HEIGHT: i64 = 160;
const BAR: i64 = 6;
const GAP: i64 = 4;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of `days` (oldest first), titled `title` (its id `chart-title`).
pub fn issued_vs_redeemed(lang: Lang, days: &[Day]) -> String {
    let max = days
        .iter()
        .flat_map(|d| [d.issued, d.redeemed])
        .max()
        .unwrap_or(0)
        .max(1);
    let step = 2 * BAR + GAP;
    let width = (i64::try_from(days.len()).unwrap_or(0) * step).max(step);
    let title = text(lang, "console-chart-title", &[]);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {width} {h}\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-labelledby=\"chart-title\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"chart-title\">{}</title>\
         <line class=\"axis\" x1=\"0\" y1=\"{HEIGHT}\" x2=\"{width}\" y2=\"{HEIGHT}\"/>",
        escape(&title),
        h = HEIGHT + 1,
    );
    let bar = |svg: &mut String, class: &str, x: i64, value: i64, label: &str| {
        let h = if value <= 0 {
            0
        } else {
            (value * HEIGHT / max).max(1)
        };
        let _ = write!(
            svg,
            "<rect class=\"{class}\" x=\"{x}\" y=\"{}\" width=\"{BAR}\" height=\"{h}\"><title>{}</title></rect>",
            HEIGHT - h,
            escape(label)
        );
    };
    for (i, d) in days.iter().enumerate() {
        let x = i64::try_from(i).unwrap_or(0) * step;
        let issued = text(
            lang,
            "console-chart-issued-on",
            &[
                ("day", d.label.as_str().into()),
                ("points", d.issued.into()),
            ],
        );
        let redeemed = text(
            lang,
            "console-chart-redeemed-on",
            &[
                ("day", d.label.as_str().into()),
                ("points", d.redeemed.into()),
            ],
        );
        bar(&mut svg, "bar-issued", x, d.issued, &issued);
        bar(&mut svg, "bar-redeemed", x + BAR, d.redeemed, &redeemed);
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_day() {
        let days = [
            Day {
                label: "1 Mar".into(),
                issued: 100,
                redeemed: 50,
            },
            Day {
                label: "2 Mar".into(),
                issued: 0,
                redeemed: 200,
            },
        ];
        let svg = issued_vs_redeemed(Lang::En, &days);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"));
        // 200 is the tallest: full height; 100 half; 0 no bar height.
        assert!(svg.contains("height=\"160\""), "{svg}");
        assert!(svg.contains("height=\"80\""), "{svg}");
        assert!(svg.contains("height=\"40\""), "{svg}");
        assert!(svg.contains("height=\"0\""), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(!svg.contains("style="));
    }

    #[test]
    fn labels_are_escaped() {
        let days = [Day {
            label: "<b>".into(),
            issued: 1,
            redeemed: 1,
        }];
        let svg = issued_vs_redeemed(Lang::En, &days);
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("&lt;b&gt;"));
    }
}
