//! Grouped bar charts (PNG and SVG) for `dcp compare`, drawn with plotters and the vendored
//! DejaVu Sans font (no system font or fontconfig needed).

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

static FONT: Once = Once::new();
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn ensure_font() {
    FONT.call_once(|| {
        // The font is vendored and known good.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT_BYTES);
    });
}

/// One panel: groups along x, one bar per series in each group.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub y_label: String,
    pub groups: Vec<String>,
    /// (series name, one value per group; NaN = no bar).
    pub series: Vec<(String, Vec<f64>)>,
    /// A horizontal reference line (e.g. speed-up 1).
    pub reference: Option<f64>,
}

const COLORS: &[RGBColor] = &[
    RGBColor(0x4C, 0x72, 0xB0),
    RGBColor(0xDD, 0x84, 0x52),
    RGBColor(0x55, 0xA8, 0x68),
    RGBColor(0xC4, 0x4E, 0x52),
    RGBColor(0x81, 0x72, 0xB3),
    RGBColor(0x93, 0x78, 0x60),
    RGBColor(0xDA, 0x8B, 0xC3),
    RGBColor(0x8C, 0x8C, 0x8C),
];

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let n_groups = p.groups.len().max(1);
    let n_series = p.series.len().max(1);
    let ymax = p
        .series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .chain(p.reference)
        .filter(|x| x.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.18;
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(46)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..n_groups as f64, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(p.y_label.as_str())
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    let width = 0.8 / n_series as f64;
    for (si, (name, vals)) in p.series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let bars = vals
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(g, &v)| {
                let x0 = g as f64 + 0.1 + si as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], color.filled())
            });
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    if let Some(r) = p.reference {
        chart
            .draw_series(LineSeries::new(
                [(0.0, r), (n_groups as f64, r)],
                BLACK.stroke_width(1),
            ))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    // Group names centred under each group.
    for (g, name) in p.groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
        let style = TextStyle::from(("sans-serif", 13).into_font()).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            ),
        );
        area.draw_text(
            name,
            &style,
            (x - area.get_base_pixel().0, y - area.get_base_pixel().1 + 6),
        )
        .map_err(err)?;
    }
    Ok(())
}

fn draw_all<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
    cols: usize,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(err)?;
    let rows = panels.len().div_ceil(cols.max(1)).max(1);
    let areas = root.split_evenly((rows, cols.max(1)));
    for (a, p) in areas.iter().zip(panels) {
        draw_panel(a, p)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Writes `stem.png` and `stem.svg` with the panels in a grid of `cols` columns.
pub fn write_figure(stem: &Path, title: &str, panels: &[Panel], cols: usize) -> Result<(), String> {
    ensure_font();
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    let size = (560 * cols as u32, 380 * rows as u32 + 40);
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    draw_all(
        BitMapBackend::new(&png, size).into_drawing_area(),
        title,
        panels,
        cols,
    )?;
    draw_all(
        SVGBackend::new(&svg, size).into_drawing_area(),
        title,
        panels,
        cols,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_png_and_svg() {
        let dir = std::env::temp_dir().join(format!("dcp-sim-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = Panel {
            title: "t".into(),
            y_label: "ms".into(),
            groups: vec!["a".into(), "b".into()],
            series: vec![
                ("x".into(), vec![1.0, 2.0]),
                ("y".into(), vec![f64::NAN, 3.0]),
            ],
            reference: Some(1.0),
        };
        write_figure(&dir.join("fig"), "title", &[p.clone(), p], 2).unwrap();
        assert!(std::fs::metadata(dir.join("fig.png")).unwrap().len() > 1000);
        let svg = std::fs::read_to_string(dir.join("fig.svg")).unwrap();
        assert!(svg.contains("<svg"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
