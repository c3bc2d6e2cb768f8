//! The scale run's plot: Pods created and Running over time, the operator's against the raw client's, as SVG.

use std::path::Path;

use plotters::prelude::*;

use super::report::{Phase, Report};

/// Draws the run into an SVG file (SVG: its text needs no font files on the machine).
///
/// # Errors
///
/// If the file cannot be written.
pub fn svg(report: &Report, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let end = |phase: &Phase| phase.samples.last().map_or(0.0, |s| s.at_s);
    let x_max = end(&report.raw).max(end(&report.operator)).max(1.0);
    let y_max = report.operator.pods.max(report.raw.pods).max(1) as f64 * 1.05;
    let caption = format!("{} RayClusters × {} workers: Pods over time", report.clusters, report.workers);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(draw_error)?;
    chart.configure_mesh().x_desc("seconds since the first create").y_desc("Pods").draw().map_err(draw_error)?;
    let series = [
        (&report.raw, false, "raw client: created", BLUE.mix(0.4)),
        (&report.raw, true, "raw client: Running", BLUE.mix(1.0)),
        (&report.operator, false, "operator: created", RED.mix(0.4)),
        (&report.operator, true, "operator: Running", RED.mix(1.0)),
    ];
    for (phase, running, label, color) in series {
        let points = phase.samples.iter().map(|s| (s.at_s, if running { s.running } else { s.created } as f64));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(draw_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).position(SeriesLabelPosition::LowerRight).draw().map_err(draw_error)?;
    root.present().map_err(draw_error)?;
    Ok(())
}

fn draw_error<E: std::error::Error + Send + Sync + 'static>(error: plotters::drawing::DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::plane::PlaneLoad;
    use crate::bench::progress::Sample;
    use crate::bench::report::{Latency, Usage};

    fn phase(pods: usize, samples: &[(f64, usize, usize)]) -> Phase {
        let samples = samples.iter().map(|&(at_s, created, running)| Sample { at_s, created, running }).collect();
        Phase::new(pods, None, None, None, samples)
    }

    #[test]
    fn the_plot_is_an_svg_with_the_four_series_named() {
        let report = Report {
            clusters: 1,
            workers: 1,
            raw_concurrency: 16,
            raw: phase(2, &[(0.0, 0, 0), (1.0, 2, 1), (2.0, 2, 2)]),
            operator: phase(2, &[(0.0, 0, 0), (2.0, 1, 0), (4.0, 2, 2)]),
            raw_plane: PlaneLoad::default(),
            operator_plane: PlaneLoad::default(),
            operator_usage: Usage::default(),
            idle_cores: 0.0,
            reconcile: Latency::default(),
            fairness: None,
            created_ratio: 0.5,
            running_ratio: 0.5,
            cpu_ms_per_pod: 0.0,
            load: String::new(),
        };
        let path = std::env::temp_dir().join(format!("wasmray-plot-{}.svg", std::process::id()));
        svg(&report, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(text.starts_with("<svg"), "{}", &text[..text.len().min(80)]);
        for label in ["raw client: created", "raw client: Running", "operator: created", "operator: Running"] {
            assert!(text.contains(label), "{label} is missing");
        }
    }
}
