//! The dashboard's chart: the last 24 hours of releases, denials and holds as a server-rendered
//! SVG (no library, no script). It is an image with a `<title>` and a `<desc>` for assistive
//! technology; the page also shows the same numbers as a table (the text alternative).
//! Colours are attributes, not inline styles (the CSP forbids those).

use std::fmt::Write as _;

use alter_core::operators::HourlyActivity;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// One series: its name and colour (each meets 3:1 contrast on white).
pub const SERIES: [(&str, &str); 3] = [
    ("Releases", "#1d4ed8"),
    ("Denials", "#b91c1c"),
    ("Holds", "#92400e"),
];

fn values(hour: &HourlyActivity) -> [i64; 3] {
    [hour.releases, hour.denials, hour.holds]
}

/// A round upper bound for the y axis (1, 2, 5, 10, 20, 50, …), at least `max`.
fn axis_top(max: i64) -> i64 {
    let mut step = 1;
    loop {
        for factor in [1, 2, 5] {
            if step * factor >= max.max(1) {
                return step * factor;
            }
        }
        step *= 10;
    }
}

/// Escapes text for SVG (titles hold only our own words and numbers, but be safe).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of `hours` (oldest first) as an `<svg>` element. `id` makes its title and
/// description ids unique on the page.
pub fn activity_svg(hours: &[HourlyActivity], id: &str) -> String {
    let totals: [i64; 3] = hours.iter().fold([0; 3], |mut acc, h| {
        for (a, v) in acc.iter_mut().zip(values(h)) {
            *a += v;
        }
        acc
    });
    let max = hours.iter().flat_map(values).max().unwrap_or(0);
    let top = axis_top(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / hours.len().max(1) as f64;
    let bar = (slot - 2.0) / 3.0;
    let y = |v: i64| TOP + plot_h - plot_h * v as f64 / top as f64;

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" class=\"chart\" \
         preserveAspectRatio=\"xMidYMid meet\" width=\"100%\">"
    );
    let _ = write!(
        svg,
        "<title id=\"{id}-title\">Credential activity, last {} hours</title>\
         <desc id=\"{id}-desc\">{}</desc>",
        hours.len(),
        escape(&format!(
            "Bars per hour: {} releases, {} denials and {} holds in total. \
             The table below lists every hour.",
            totals[0], totals[1], totals[2]
        ))
    );
    // Axes and gridlines: 0, half, top.
    for value in [0, top / 2, top] {
        let at = y(value);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{at:.1}\" y2=\"{at:.1}\" stroke=\"#d4d4d8\" \
             stroke-width=\"1\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" \
             text-anchor=\"end\" fill=\"#3f3f46\">{value}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            at + 4.0
        );
    }
    for (i, hour) in hours.iter().enumerate() {
        let x0 = LEFT + slot * i as f64 + 1.0;
        for (s, value) in values(hour).into_iter().enumerate() {
            if value == 0 {
                continue;
            }
            let (name, colour) = SERIES[s];
            let top_y = y(value);
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"{top_y:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" \
                 fill=\"{colour}\"><title>{} {name}: {value}</title></rect>",
                x0 + bar * s as f64,
                TOP + plot_h - top_y,
                hour_label(hour),
            );
        }
        // Every sixth hour is labelled.
        if i % 6 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" fill=\"#3f3f46\">{}</text>",
                x0,
                HEIGHT - 8.0,
                hour_label(hour)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// `HH:00` (UTC) of an hour.
pub fn hour_label(hour: &HourlyActivity) -> String {
    let text = hour.hour_start.to_rfc3339();
    // `YYYY-MM-DDTHH:MM:SS…`
    text.get(11..16).map_or(text.clone(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use alter_core::operators::hourly_activity;
    use alter_core::time::Timestamp;

    use super::*;

    fn hours() -> Vec<HourlyActivity> {
        let now = Timestamp::from_micros(1000 * 3_600_000_000 + 1);
        hourly_activity(
            now,
            &[
                (1000, "credential.released".into(), 7),
                (999, "credential.denied".into(), 2),
                (990, "approval.requested".into(), 1),
            ],
        )
    }

    #[test]
    fn the_chart_is_an_accessible_image_of_every_nonzero_count() {
        let svg = activity_svg(&hours(), "activity");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("aria-labelledby=\"activity-title activity-desc\""));
        assert!(svg.contains("<title id=\"activity-title\">Credential activity, last 24 hours"));
        assert!(svg.contains("7 releases, 2 denials and 1 holds in total"));
        assert_eq!(svg.matches("<rect").count(), 3, "one bar per nonzero count");
        assert!(svg.contains("Releases: 7"));
        assert!(!svg.contains("style="), "no inline style under the CSP");
        // The y axis tops out at a round number above the largest count.
        assert!(svg.contains(">10</text>"));
    }

    #[test]
    fn an_empty_day_draws_axes_only() {
        let now = Timestamp::from_micros(5 * 3_600_000_000);
        let svg = activity_svg(&hourly_activity(now, &[]), "c");
        assert_eq!(svg.matches("<rect").count(), 0);
        assert!(svg.contains("0 releases, 0 denials and 0 holds"));
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(axis_top(0), 1);
        assert_eq!(axis_top(3), 5);
        assert_eq!(axis_top(7), 10);
        assert_eq!(axis_top(11), 20);
        assert_eq!(axis_top(430), 500);
    }
}
