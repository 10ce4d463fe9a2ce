//! One line chart, drawn with plotters the same way as SVG and as PNG.
//!
//! Text is laid out (and, in the PNG, drawn) with the DejaVu Sans bundled in
//! `fonts/`, through ab_glyph: no fontconfig or freetype on the machine.
//! Mechanisms are coloured by family (blues for message passing, reds and
//! oranges for shared memory, greys for limits, greens for peers) and told
//! apart within a family by shade and marker, so that thirty lines stay
//! readable; the legend lists them by family.

use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// DejaVu Sans 2.37 (Bitstream Vera licence, see `fonts/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");

pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 680;
const LEGEND_WIDTH: u32 = 260;

/// What the legend says a hollow marker is.
pub const HOLLOW_NOTE: &str = "hollow: rate NOT sustained";

/// The order families are listed in, with their legend headings.
pub const FAMILIES: [(&str, &str); 4] = [
    ("message-passing", "message passing"),
    ("shared-memory", "shared memory"),
    ("limit", "limits"),
    ("peer", "peers"),
];

/// A chart: titled axes and one series per mechanism.
pub struct Chart {
    /// File name without extension.
    pub stem: String,
    pub title: String,
    /// What the chart shows, for the page under it.
    pub caption: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
}

pub struct Axis {
    pub label: String,
    /// Whether the axis is logarithmic (values are given as they are).
    pub log: bool,
    pub ticks: Ticks,
    pub format: fn(f64) -> String,
}

/// Where the labelled grid lines go.
pub enum Ticks {
    /// 1, 2, 5 times a power of ten, thinned to fit.
    Decimal,
    /// Powers of two, thinned to fit.
    Binary,
    /// Exactly these values.
    At(Vec<f64>),
}

pub struct Series {
    pub name: String,
    pub family: String,
    pub points: Vec<Point>,
}

/// A point, with an optional whisker from `y` to `whisker` (e.g. p50 to p99).
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub whisker: Option<f64>,
    /// Drawn as a hollow marker outside the series' line: a point that is
    /// no measurement of what the x axis says (an offered rate the
    /// mechanism could not sustain). The legend explains it.
    pub hollow: bool,
}

impl Point {
    /// A filled point.
    pub fn at(x: f64, y: f64, whisker: Option<f64>) -> Point {
        Point {
            x,
            y,
            whisker,
            hollow: false,
        }
    }
}

impl Chart {
    /// The chart as an SVG document.
    pub fn svg(&self) -> Result<String> {
        register_font()?;
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, self).map_err(|e| anyhow!("drawing {}: {e}", self.stem))?;
        }
        Ok(out)
    }

    /// The chart as a PNG image (drawn in memory: the file is written like
    /// every other, by `report::files`).
    pub fn png(&self) -> Result<Vec<u8>> {
        register_font()?;
        let mut rgb = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, self).map_err(|e| anyhow!("drawing {}: {e}", self.stem))?;
        }
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .and_then(|mut w| w.write_image_data(&rgb))
            .map_err(|e| anyhow!("encoding {} as PNG: {e}", self.stem))?;
        Ok(out)
    }
}

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the bundled font could not be read"))
    }
}

#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

struct Look {
    color: RGBColor,
    marker: Marker,
}

/// Colours and markers: a hue range per family, shades and markers within.
fn looks(series: &[Series]) -> Vec<Look> {
    series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let same: Vec<usize> = (0..series.len())
                .filter(|&j| series[j].family == s.family)
                .collect();
            let k = same.iter().position(|&j| j == i).unwrap_or(0);
            let n = same.len().max(1);
            // Hue range (in turns), saturation, and two lightnesses.
            let (from, to, sat) = match s.family.as_str() {
                "message-passing" => (0.53, 0.78, 0.75),
                "shared-memory" => (-0.03, 0.10, 0.85),
                "limit" => (0.0, 0.0, 0.0),
                _ => (0.22, 0.42, 0.7),
            };
            let t = if n == 1 {
                0.0
            } else {
                k as f64 / (n - 1) as f64
            };
            let hue = (from + (to - from) * t).rem_euclid(1.0);
            let light = if sat == 0.0 {
                0.1 + 0.45 * t
            } else if k % 2 == 0 {
                0.38
            } else {
                0.55
            };
            let (r, g, b) = hsl(hue, sat, light);
            Look {
                color: RGBColor(r, g, b),
                marker: [
                    Marker::Circle,
                    Marker::Triangle,
                    Marker::Square,
                    Marker::Cross,
                ][k % 4],
            }
        })
        .collect()
}

fn hsl(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h * 6.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (to(r), to(g), to(b))
}

/// A value in plotting coordinates.
fn place(axis: &Axis, v: f64) -> f64 {
    if axis.log { v.log10() } else { v }
}

/// The plotted range of an axis over `values` (plotting coordinates), padded.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(0.05);
    (lo - pad, hi + pad)
}

/// Labelled values (not logs) within the plotted range `[lo, hi]`.
fn ticks(axis: &Axis, lo: f64, hi: f64) -> Vec<f64> {
    let inside = |v: f64| {
        let p = place(axis, v);
        p >= lo && p <= hi
    };
    let decimal = |mults: &[f64]| -> Vec<f64> {
        (-3..16)
            .flat_map(|e| mults.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|&v| inside(v))
            .collect()
    };
    let candidates: Vec<f64> = match &axis.ticks {
        Ticks::At(v) => return v.iter().copied().filter(|&v| inside(v)).collect(),
        // 1-2-5 per decade when that is few enough, else 1-3, else 1.
        Ticks::Decimal => [&[1.0, 2.0, 5.0][..], &[1.0, 3.0], &[1.0]]
            .into_iter()
            .map(decimal)
            .find(|c| c.len() <= 11)
            .unwrap_or_else(|| decimal(&[1.0])),
        Ticks::Binary => (0..64)
            .map(|e| 2f64.powi(e))
            .filter(|&v| inside(v))
            .collect(),
    };
    // Keep every k-th so that at most eleven are labelled.
    let step = candidates.len().div_ceil(11).max(1);
    candidates.into_iter().step_by(step).collect()
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Chart) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let (plot, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
    let looks = looks(&c.series);

    // Series spread sideways a little on a log x axis, so that whiskers at
    // the same size do not hide each other.
    let n = c.series.len();
    let step = if c.x.log && n > 1 {
        (0.2 / n as f64).min(0.012)
    } else {
        0.0
    };
    // Points in plotting coordinates.
    let placed: Vec<Vec<Point>> = c
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let dodge = (i as f64 - (n - 1) as f64 / 2.0) * step;
            s.points
                .iter()
                .map(|p| Point {
                    x: place(&c.x, p.x) + dodge,
                    y: place(&c.y, p.y),
                    whisker: p.whisker.map(|w| place(&c.y, w)),
                    hollow: p.hollow,
                })
                .filter(|p| p.x.is_finite() && p.y.is_finite())
                .collect()
        })
        .collect();
    let all = || placed.iter().flatten();
    let (x0, x1) = range(all().map(|p| p.x));
    let (y0, y1) = range(all().flat_map(|p| [Some(p.y), p.whisker]).flatten());
    let x_ticks: Vec<f64> = ticks(&c.x, x0, x1)
        .into_iter()
        .map(|v| place(&c.x, v))
        .collect();
    let y_ticks: Vec<f64> = ticks(&c.y, y0, y1)
        .into_iter()
        .map(|v| place(&c.y, v))
        .collect();

    let mut chart = ChartBuilder::on(&plot)
        .caption(&c.title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(56)
        .y_label_area_size(92)
        .build_cartesian_2d(
            Scale {
                lo: x0,
                hi: x1,
                ticks: x_ticks,
            },
            Scale {
                lo: y0,
                hi: y1,
                ticks: y_ticks,
            },
        )
        .map_err(e)?;
    let unplace = |axis: &Axis, v: f64| if axis.log { 10f64.powf(v) } else { v };
    let x_fmt = |v: &f64| (c.x.format)(unplace(&c.x, *v));
    let y_fmt = |v: &f64| (c.y.format)(unplace(&c.y, *v));
    chart
        .configure_mesh()
        .x_desc(c.x.label.as_str())
        .y_desc(c.y.label.as_str())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .bold_line_style(BLACK.mix(0.15))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(e)?;

    for (points, look) in placed.iter().zip(&looks) {
        let line = ShapeStyle::from(look.color).stroke_width(2);
        // The line joins the filled points only: a hollow one is no
        // measurement of its x and must not read as part of the curve.
        chart
            .draw_series(LineSeries::new(
                points.iter().filter(|p| !p.hollow).map(|p| (p.x, p.y)),
                line,
            ))
            .map_err(e)?;
        let thin = ShapeStyle::from(look.color.mix(0.7)).stroke_width(1);
        for &Point {
            x,
            y,
            whisker: w,
            hollow,
        } in points
        {
            if let Some(w) = w {
                chart
                    .draw_series([PathElement::new(vec![(x, y), (x, w)], thin)])
                    .map_err(e)?;
                let cap = chart.backend_coord(&(x, w));
                root.draw(&PathElement::new(
                    vec![(cap.0 - 5, cap.1), (cap.0 + 5, cap.1)],
                    thin,
                ))
                .map_err(e)?;
            }
            marker(root, chart.backend_coord(&(x, y)), look, hollow).map_err(e)?;
        }
    }
    draw_legend(&legend, c, &looks).map_err(e)?;
    root.present().map_err(e)
}

/// A linear axis in plotting coordinates with grid lines exactly at `ticks`
/// (plotters' `WithKeyPoints` cannot be given label formatters).
struct Scale {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Scale {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        limit.0 + ((limit.1 - limit.0) as f64 * t).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Scale {
    fn format(v: &f64) -> String {
        format!("{v}")
    }
}

fn marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    look: &Look,
    hollow: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    if hollow {
        // A ring in the series' colour, white inside, whatever the
        // series' marker: plain to tell from every filled one.
        area.draw(&Circle::new(at, 6, WHITE.filled()))?;
        return area.draw(&Circle::new(
            at,
            6,
            ShapeStyle::from(look.color).stroke_width(2),
        ));
    }
    let filled = ShapeStyle::from(look.color).filled();
    let (x, y) = at;
    match look.marker {
        Marker::Circle => area.draw(&Circle::new(at, 4, filled)),
        Marker::Triangle => area.draw(&TriangleMarker::new(at, 6, filled)),
        Marker::Square => area.draw(&Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], filled)),
        Marker::Cross => area.draw(&Cross::new(
            at,
            5,
            ShapeStyle::from(look.color).stroke_width(2),
        )),
    }
}

/// The legend: mechanisms by family, each with its line and marker.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: &Chart,
    looks: &[Look],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut families: Vec<&str> = FAMILIES.iter().map(|f| f.0).collect();
    for s in &c.series {
        if !families.contains(&s.family.as_str()) {
            families.push(&s.family);
        }
    }
    let present: Vec<&str> = families
        .into_iter()
        .filter(|f| c.series.iter().any(|s| s.family == *f))
        .collect();
    let whiskers = c
        .series
        .iter()
        .any(|s| s.points.iter().any(|p| p.whisker.is_some()));
    let hollows = c.series.iter().any(|s| s.points.iter().any(|p| p.hollow));
    let lines =
        c.series.len() + present.len() + usize::from(whiskers) * 2 + usize::from(hollows) * 2;
    let row = ((HEIGHT as i32 - 60) / lines.max(1) as i32).clamp(10, 22);
    let size = (row - 5).clamp(9, 15);
    let left = |s: u32| {
        TextStyle::from(("sans-serif", s))
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center))
    };
    let mut y = 44;
    for family in present {
        let heading = FAMILIES
            .iter()
            .find(|f| f.0 == family)
            .map_or(family, |f| f.1);
        area.draw_text(heading, &left(size as u32 + 1), (8, y))?;
        y += row;
        for (s, look) in c.series.iter().zip(looks) {
            if s.family != family {
                continue;
            }
            let style = ShapeStyle::from(look.color).stroke_width(2);
            area.draw(&PathElement::new(vec![(14, y), (42, y)], style))?;
            marker(area, (28, y), look, false)?;
            area.draw_text(&s.name, &left(size as u32), (50, y))?;
            y += row;
        }
    }
    if whiskers {
        y += row / 2;
        area.draw_text("whisker: up to p99", &left(size as u32), (8, y))?;
    }
    if hollows {
        y += row;
        let grey = Look {
            color: RGBColor(90, 90, 90),
            marker: Marker::Circle,
        };
        marker(area, (14, y), &grey, true)?;
        area.draw_text(HOLLOW_NOTE, &left(size as u32), (26, y))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(family: &str, n: usize) -> Vec<Series> {
        (0..n)
            .map(|i| Series {
                name: format!("{family}-{i}"),
                family: family.into(),
                points: vec![],
            })
            .collect()
    }

    #[test]
    fn families_get_distinct_colours_and_every_mechanism_its_own_look() {
        let mut all = series("message-passing", 12);
        all.extend(series("shared-memory", 12));
        all.extend(series("limit", 3));
        all.extend(series("peer", 3));
        let looks = looks(&all);
        for (i, a) in looks.iter().enumerate() {
            for b in &looks[i + 1..] {
                let same_marker =
                    std::mem::discriminant(&a.marker) == std::mem::discriminant(&b.marker);
                assert!(a.color != b.color || !same_marker, "two series look alike");
            }
        }
        // Message passing is blue-ish, shared memory red-ish.
        let RGBColor(r, _, b) = looks[0].color;
        assert!(b > r);
        let RGBColor(r, _, b) = looks[12].color;
        assert!(r > b);
    }

    #[test]
    fn ticks_stay_few_and_inside() {
        let axis = Axis {
            label: String::new(),
            log: true,
            ticks: Ticks::Decimal,
            format: |v| v.to_string(),
        };
        let t = ticks(&axis, 2.0, 9.5);
        assert!(t.len() <= 11 && !t.is_empty(), "{t:?}");
        assert!(t.iter().all(|&v| (2.0..=9.5).contains(&v.log10())));
    }
}
