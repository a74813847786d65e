//! Charts as SVG and PNG, drawn with plotters.
//!
//! The PNG backend needs a font to draw text; DejaVu Sans is embedded from
//! the `dejavu` crate and registered once, so no system font is needed and
//! the pictures are the same on every machine. Logarithmic axes are drawn by
//! plotting `log10` of the values with labels written back as powers.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::Chart;

/// Size of every chart, in pixels.
pub const SIZE: (u32, u32) = (900, 540);

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a static, valid TTF from the dejavu crate.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// The chart as an SVG document.
pub fn svg(chart: &Chart) -> Result<String, String> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(chart, &root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Writes the chart as a PNG file.
pub fn png(chart: &Chart, path: &Path) -> Result<(), String> {
    register_font();
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    draw(chart, &root)?;
    root.present().map_err(|e| e.to_string())
}

fn tr(v: f64, log: bool) -> Option<f64> {
    if !log {
        return v.is_finite().then_some(v);
    }
    (v > 0.0 && v.is_finite()).then(|| v.log10())
}

fn bounds(chart: &Chart) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for s in &chart.series {
        for p in &s.points {
            if let (Some(x), Some(y)) = (tr(p[0], chart.log_x), tr(p[1], chart.log_y)) {
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
            }
        }
    }
    if x0 > x1 {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    if !chart.log_y {
        y0 = y0.min(0.0);
    }
    let pad = |a: f64, b: f64| {
        if (b - a).abs() < 1e-12 {
            (a - 1.0, b + 1.0)
        } else {
            (a, b + (b - a) * 0.05)
        }
    };
    (pad(x0, x1), pad(y0, y1))
}

fn label(v: f64, log: bool) -> String {
    let v = if log { 10f64.powf(v) } else { v };
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.abs() >= 10.0 || v == v.round() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn draw<DB: DrawingBackend>(chart: &Chart, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let ((x0, x1), (y0, y1)) = bounds(chart);
    let mut cc = ChartBuilder::on(root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let (lx, ly) = (chart.log_x, chart.log_y);
    cc.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&|v| label(*v, lx))
        .y_label_formatter(&|v| label(*v, ly))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    for b in &chart.bands {
        if let (Some(a), Some(z)) = (tr(b.from, lx), tr(b.to, lx)) {
            cc.draw_series(std::iter::once(Rectangle::new(
                [(a, y0), (z, y1)],
                RGBColor(200, 200, 200).mix(0.35).filled(),
            )))
            .map_err(err)?
            .label(b.label.as_str())
            .legend(|(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 16, y + 5)],
                    RGBColor(210, 210, 210).filled(),
                )
            });
        }
    }
    let mut solid = 0;
    for s in &chart.series {
        let color = if s.dashed {
            // A dashed line shares the colour of the solid line before it.
            PALETTE[(solid + PALETTE.len() - 1) % PALETTE.len()]
        } else {
            solid += 1;
            PALETTE[(solid - 1) % PALETTE.len()]
        };
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| Some((tr(p[0], lx)?, tr(p[1], ly)?)))
            .collect();
        let style = ShapeStyle::from(&color).stroke_width(2);
        if s.dashed {
            cc.draw_series(DashedLineSeries::new(pts, 6, 5, style))
                .map_err(err)?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        } else {
            let markers = pts.len() <= 40;
            cc.draw_series(LineSeries::new(pts.clone(), style))
                .map_err(err)?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            if markers {
                cc.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                    .map_err(err)?;
            }
        }
    }
    cc.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}
