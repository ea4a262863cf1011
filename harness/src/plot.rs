//! SVG plots drawn in Rust (plotters' SVG backend, no fonts loaded: the browser renders
//! the text), so reports are self-contained files with nothing fetched at view time.
//!
//! Every plot takes at most [`MAX_POINTS`] points; larger inputs are thinned evenly, so a
//! long run's report stays a few megabytes at most.

use plotters::prelude::*;

/// Most points one plot draws.
pub const MAX_POINTS: usize = 20_000;
pub const WIDTH_PX: u32 = 960;

/// What an operation's completion said, with its color.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ok,
    Fail,
    Info,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Ok, Kind::Fail, Kind::Info];

    fn color(self) -> RGBColor {
        match self {
            Kind::Ok => RGBColor(46, 125, 50),
            Kind::Fail => RGBColor(198, 40, 40),
            Kind::Info => RGBColor(239, 140, 0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::Fail => "fail",
            Kind::Info => "info",
        }
    }
}

/// A span of time a fault was in effect, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub start_s: f64,
    pub end_s: f64,
    pub class: String,
}

const SHADE: RGBColor = RGBColor(120, 120, 200);

type Error = String;

fn err<E: std::fmt::Debug>(e: E) -> Error {
    format!("plot: {e:?}")
}

/// Every `len / MAX_POINTS`-th item, so at most [`MAX_POINTS`] remain.
fn thin<T: Clone>(items: &[T]) -> Vec<T> {
    let stride = items.len().div_ceil(MAX_POINTS).max(1);
    items.iter().step_by(stride).cloned().collect()
}

/// Latency (ms, log scale) against completion time (s): a dot per operation, colored by
/// kind, over the shaded fault windows.
pub fn latency(
    title: &str,
    points: &[(f64, f64, Kind)],
    windows: &[Window],
    end_s: f64,
) -> Result<String, Error> {
    let points = thin(points);
    let y_max = points.iter().map(|p| p.1).fold(1.0_f64, f64::max) * 1.5;
    let y_min = points
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .clamp(1e-3, 1.0)
        / 1.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..end_s.max(1e-3), (y_min..y_max).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("latency (ms)")
            .draw()
            .map_err(err)?;
        shade(&mut chart, windows, y_min, y_max)?;
        for kind in Kind::ALL {
            let color = kind.color();
            chart
                .draw_series(
                    points
                        .iter()
                        .filter(|p| p.2 == kind)
                        .map(|p| Circle::new((p.0, p.1), 2, color.mix(0.6).filled())),
                )
                .map_err(err)?
                .label(kind.name())
                .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
        }
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Completions per second of each kind against time, over the shaded fault windows.
pub fn throughput(
    title: &str,
    per_second: &[[u64; 3]],
    windows: &[Window],
) -> Result<String, Error> {
    let end_s = per_second.len().max(1) as f64;
    let y_max = per_second
        .iter()
        .flatten()
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..end_s, 0f64..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("completions / s")
            .draw()
            .map_err(err)?;
        shade(&mut chart, windows, 0.0, y_max)?;
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            let color = kind.color();
            let series = per_second
                .iter()
                .enumerate()
                .map(|(s, c)| (s as f64 + 0.5, c[i] as f64));
            chart
                .draw_series(LineSeries::new(series, color.stroke_width(2)))
                .map_err(err)?
                .label(kind.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// One bar per operation from invocation to completion, a row per process.
pub fn timeline(
    title: &str,
    bars: &[(usize, f64, f64, Kind)],
    rows: usize,
    windows: &[Window],
    end_s: f64,
) -> Result<String, Error> {
    let bars = thin(bars);
    let rows = rows.max(1);
    let height = (60 + 14 * rows).min(1200) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..end_s.max(1e-3), 0f64..rows as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("process row")
            .disable_y_mesh()
            .draw()
            .map_err(err)?;
        shade(&mut chart, windows, 0.0, rows as f64)?;
        chart
            .draw_series(bars.iter().map(|&(row, a, b, kind)| {
                let y = row as f64;
                Rectangle::new(
                    [(a, y + 0.15), (b.max(a + end_s / 2000.0), y + 0.85)],
                    kind.color().mix(0.8).filled(),
                )
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A series of a line chart: its name and its (x, y) points.
pub type Series = (String, Vec<(f64, f64)>);

/// Most series one line chart draws.
pub const MAX_SERIES: usize = 12;

/// One line per series, a dot at each point; x on a log scale when its values span two
/// orders of magnitude or more (keys in use, offered rates).
pub fn lines(title: &str, series: &[Series], x_desc: &str, y_desc: &str) -> Result<String, Error> {
    let series = &series[..series.len().min(MAX_SERIES)];
    let xs = || series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let x_min = xs().fold(f64::INFINITY, f64::min);
    let x_max = xs().fold(f64::NEG_INFINITY, f64::max);
    if !(x_min.is_finite() && x_max.is_finite()) {
        return Err("plot: no points".into());
    }
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.1;
    let log_x = x_min > 0.0 && x_max / x_min >= 100.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(60);
        let pad = if x_max > x_min {
            (x_max - x_min) * 0.05
        } else {
            1.0
        };
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_desc)
                    .y_desc(y_desc)
                    .draw()
                    .map_err(err)?;
                for (i, (name, points)) in series.iter().enumerate() {
                    let color = Palette99::pick(i).to_rgba();
                    chart
                        .draw_series(LineSeries::new(
                            points.iter().copied(),
                            color.stroke_width(2),
                        ))
                        .map_err(err)?
                        .label(name.as_str())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                        });
                    chart
                        .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(err)?;
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.4))
                    .draw()
                    .map_err(err)?;
            }};
        }
        if log_x {
            draw!(builder
                .build_cartesian_2d((x_min / 1.2..x_max * 1.2).log_scale(), 0f64..y_max)
                .map_err(err)?);
        } else {
            draw!(builder
                .build_cartesian_2d(x_min - pad..x_max + pad, 0f64..y_max)
                .map_err(err)?);
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// One horizontal bar per row, labelled, for side-by-side figures (a bench's cells).
pub fn bars(title: &str, rows: &[(String, f64)], x_desc: &str) -> Result<String, Error> {
    let n = rows.len().max(1);
    let x_max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max).max(1e-9) * 1.1;
    let height = (70 + 18 * n).min(6000) as u32;
    let longest = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let label_px = (longest as u32 * 11 / 2 + 10).clamp(60, 420);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(label_px)
            .build_cartesian_2d(0f64..x_max, (0..n).into_segmented())
            .map_err(err)?;
        // The first row at the top: segment n-1 holds row 0.
        let label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < n => {
                rows.get(n - 1 - i).map(|r| r.0.clone()).unwrap_or_default()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&label)
            .x_desc(x_desc)
            .draw()
            .map_err(err)?;
        let color = Kind::Ok.color();
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (r.1, SegmentValue::Exact(i + 1)),
                    ],
                    color.mix(0.7).filled(),
                )
            }))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

type Chart<'a, 'b, Y> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>;

fn shade<Y>(
    chart: &mut Chart<'_, '_, Y>,
    windows: &[Window],
    y_min: f64,
    y_max: f64,
) -> Result<(), Error>
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(windows.iter().map(|w| {
            Rectangle::new(
                [(w.start_s, y_min), (w.end_s, y_max)],
                SHADE.mix(0.15).filled(),
            )
        }))
        .map_err(err)?;
    Ok(())
}

fn legend<'a, 'b: 'a, Y>(chart: &mut Chart<'a, 'b, Y>) -> Result<(), Error>
where
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_svg_with_their_labels_and_shaded_windows() {
        let windows = [Window {
            start_s: 1.0,
            end_s: 2.0,
            class: "kill".into(),
        }];
        let points = [
            (0.5, 2.0, Kind::Ok),
            (1.5, 40.0, Kind::Info),
            (2.5, 1.0, Kind::Fail),
        ];
        let svg = latency("txn latency", &points, &windows, 3.0).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        for label in [
            "txn latency",
            "latency (ms)",
            "time (s)",
            "ok",
            "fail",
            "info",
        ] {
            assert!(svg.contains(label), "{label}");
        }
        assert_eq!(
            svg.matches("<circle").count(),
            3 + 3,
            "three dots and three legend marks"
        );
        let t = throughput("throughput", &[[3, 1, 0], [5, 0, 2]], &windows).unwrap();
        assert!(
            t.contains("completions / s") && t.contains("<polyline"),
            "{t}"
        );
        let tl = timeline(
            "ops",
            &[(0, 0.1, 0.2, Kind::Ok), (1, 0.3, 0.9, Kind::Info)],
            2,
            &[],
            1.0,
        )
        .unwrap();
        assert!(tl.matches("<rect").count() >= 2, "{tl}");
    }

    #[test]
    fn bars_are_labelled_one_per_row() {
        let rows = [
            ("repdb-certification-n3".to_string(), 5000.0),
            ("postgres-serializable-n1".to_string(), 3000.0),
        ];
        let svg = bars("ok/s", &rows, "transactions / s").unwrap();
        assert!(
            svg.contains("repdb-certification-n3") && svg.contains("postgres-serializable-n1"),
            "{svg}"
        );
        assert!(svg.contains("transactions / s"));
        assert!(
            svg.matches("<rect").count() >= 3,
            "the background and a bar per row"
        );
    }

    #[test]
    fn lines_draw_each_series_with_its_name() {
        let series = vec![
            (
                "certification".to_string(),
                vec![(1.0, 13_000.0), (3.0, 5_800.0), (5.0, 4_000.0)],
            ),
            (
                "active".to_string(),
                vec![(1.0, 16_000.0), (3.0, 5_900.0), (5.0, 3_600.0)],
            ),
        ];
        let svg = lines("ok/s against replicas", &series, "replicas", "ok/s").unwrap();
        assert!(
            svg.contains("certification") && svg.contains("active") && svg.contains("replicas")
        );
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
        let keys = vec![("c".to_string(), vec![(2.0, 1.0), (1000.0, 2.0)])];
        assert!(lines("log", &keys, "keys", "ok/s").is_ok());
        assert!(lines("empty", &[], "x", "y").is_err());
    }

    #[test]
    fn large_inputs_are_thinned() {
        let points: Vec<(f64, f64, Kind)> = (0..(3 * MAX_POINTS))
            .map(|i| (i as f64, 1.0, Kind::Ok))
            .collect();
        assert!(thin(&points).len() <= MAX_POINTS);
        assert_eq!(thin(&points[..10]).len(), 10);
        let svg = latency("big", &points, &[], points.len() as f64).unwrap();
        assert!(svg.matches("<circle").count() <= MAX_POINTS + 3);
    }
}
