//! Scaling curves: how the embedded twin's throughput, latency and memory go as the
//! fleet grows (1,000 → 100,000 vehicles, about as many events per second, 2 clients),
//! and how fan-out, latency and memory go as clients grow (100 → 10,000, the default
//! fleet of 240). Real server process, real WebSocket clients, on loopback.
//!
//! `cargo bench --bench scaling` draws `benchmarks/charts/scaling_fleet.png` and
//! `benchmarks/charts/scaling_clients.png` (committed beside `BENCHMARKS.md`);
//! `-- --fleets 1000,10000 --clients 100,1000 --seconds 8 --charts DIR` to choose.
//! `--quick`: two small points of each, 2 s, charts under `target/benchmarks/`: the CI
//! smoke run. Results go to stdout and to `target/benchmarks/scaling.json`.
//!
//! Text in the charts is drawn with the DejaVu Sans font of the system
//! (`/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf`, Debian's fonts-dejavu-core, which
//! chromium brings; `STREAMCITY_FONT` names another TTF).

#![allow(clippy::unwrap_used)] // a benchmark: any failure should stop it loudly

use std::path::{Path, PathBuf};
use std::time::Duration;

use plotters::prelude::*;

use streamcity_testkit::results;
use streamcity_testkit::twin;

/// One curve of a panel: a name and its points.
struct Curve {
    name: &'static str,
    points: Vec<(f64, f64)>,
}

/// One panel: a title, a y label and its curves.
struct Panel {
    title: &'static str,
    y: &'static str,
    curves: Vec<Curve>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick" || a == "--test");
    let fleets: Vec<u32> = twin::list(&args, "--fleets").unwrap_or(if quick {
        vec![500, 2_000]
    } else {
        vec![1_000, 3_000, 10_000, 30_000, 100_000]
    });
    let clients: Vec<usize> = twin::list(&args, "--clients").unwrap_or(if quick {
        vec![20, 100]
    } else {
        vec![100, 300, 1_000, 3_000, 10_000]
    });
    let seconds: f64 = twin::arg(&args, "--seconds").unwrap_or(if quick { 2.0 } else { 8.0 });
    let charts: PathBuf = twin::arg::<String>(&args, "--charts")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if quick {
                results::results_dir().join("charts")
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("benchmarks/charts")
            }
        });
    register_font();
    let rt = twin::runtime();

    println!("Fleet: 2 clients, updates every 100 ms");
    println!("| vehicles | events/s | p50 ms | p99 ms | server MiB |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    let mut by_fleet = Vec::new();
    for &vehicles in &fleets {
        let server = twin::Server::start(
            env!("CARGO_BIN_EXE_streamcity"),
            &["--bus", "memory", "--vehicles", &vehicles.to_string()],
        );
        std::thread::sleep(Duration::from_secs(3));
        let r = rt.block_on(twin::measure(&server, 2, seconds, 1));
        drop(server);
        assert!(r.connected > 0, "no client connected");
        println!(
            "| {vehicles} | {:.0} | {} | {} | {:.0} |",
            r.events_per_s, r.p50_ms, r.p99_ms, r.server_rss_mib
        );
        by_fleet.push((vehicles, r));
    }

    println!("Clients: 240 vehicles, updates every 100 ms");
    println!("| clients | connected | vehicle updates/s | p50 ms | p99 ms | server KiB/client |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut by_clients = Vec::new();
    for &n in &clients {
        // The load measured, not the client cap.
        let server = twin::Server::start(
            env!("CARGO_BIN_EXE_streamcity"),
            &["--bus", "memory", "--max-clients", "100000"],
        );
        std::thread::sleep(Duration::from_secs(2));
        let r = rt.block_on(twin::measure(&server, n, seconds, (n / 50).max(1)));
        drop(server);
        assert!(r.connected > 0, "no client connected");
        println!(
            "| {n} | {} | {:.0} | {} | {} | {:.1} |",
            r.connected, r.updates_per_s, r.p50_ms, r.p99_ms, r.server_kib_per_client
        );
        by_clients.push((n, r));
        std::thread::sleep(Duration::from_secs(1));
    }

    let fleet_x = |f: fn(&twin::Measured) -> f64| -> Vec<(f64, f64)> {
        by_fleet
            .iter()
            .map(|(v, r)| (f64::from(*v), f(r)))
            .collect()
    };
    let clients_x = |f: fn(&twin::Measured) -> f64| -> Vec<(f64, f64)> {
        by_clients.iter().map(|(n, r)| (*n as f64, f(r))).collect()
    };
    std::fs::create_dir_all(&charts).unwrap();
    let fleet_png = charts.join("scaling_fleet.png");
    draw(
        &fleet_png,
        "vehicles (log scale)",
        &[
            Panel {
                title: "Throughput",
                y: "events/s processed",
                curves: vec![Curve {
                    name: "events/s",
                    points: fleet_x(|r| r.events_per_s),
                }],
            },
            latency_panel(&fleet_x),
            Panel {
                title: "Server memory",
                y: "MiB resident",
                curves: vec![Curve {
                    name: "RSS",
                    points: fleet_x(|r| r.server_rss_mib),
                }],
            },
        ],
    );
    let clients_png = charts.join("scaling_clients.png");
    draw(
        &clients_png,
        "WebSocket clients (log scale)",
        &[
            Panel {
                title: "Fan-out",
                y: "vehicle updates/s delivered",
                curves: vec![Curve {
                    name: "updates/s",
                    points: clients_x(|r| r.updates_per_s),
                }],
            },
            latency_panel(&clients_x),
            Panel {
                title: "Server memory per client",
                y: "KiB",
                curves: vec![Curve {
                    name: "KiB/client",
                    points: clients_x(|r| r.server_kib_per_client),
                }],
            },
        ],
    );
    println!("charts: {} {}", fleet_png.display(), clients_png.display());

    let mut rates = serde_json::Map::new();
    for (v, r) in &by_fleet {
        rates.insert(format!("events_per_s_{v}_vehicles"), r.events_per_s.into());
    }
    for (n, r) in &by_clients {
        rates.insert(format!("updates_per_s_{n}_clients"), r.updates_per_s.into());
    }
    results::write_results(
        "scaling",
        &serde_json::json!({
            "benchmark": "scaling",
            "seconds": seconds,
            "rates": rates,
            "fleet": by_fleet.iter().map(|(v, r)| serde_json::json!({"vehicles": v, "measured": r})).collect::<Vec<_>>(),
            "clients": by_clients.iter().map(|(n, r)| serde_json::json!({"clients": n, "measured": r})).collect::<Vec<_>>(),
            "charts": [fleet_png.display().to_string(), clients_png.display().to_string()],
        }),
    );
}

/// A value of each point of a sweep, as (x, value).
type Series<'a> = &'a dyn Fn(fn(&twin::Measured) -> f64) -> Vec<(f64, f64)>;

/// The p50 and p99 latency of a sweep.
fn latency_panel(series: Series<'_>) -> Panel {
    Panel {
        title: "Latency, creation to client",
        y: "ms",
        curves: vec![
            Curve {
                name: "p50",
                points: series(|r| f64::from(r.p50_ms)),
            },
            Curve {
                name: "p99",
                points: series(|r| f64::from(r.p99_ms)),
            },
        ],
    }
}

/// Gives plotters a font for the charts' text.
fn register_font() {
    let path = std::env::var("STREAMCITY_FONT")
        .unwrap_or_else(|_| "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".to_owned());
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("the charts need a TTF font: {path}: {e} (apt-get install fonts-dejavu-core, or set STREAMCITY_FONT)")
    });
    // plotters keeps the font for the life of the program.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
        panic!("{path} is not a font plotters can read");
    }
}

/// Draws `panels` side by side over a shared log-scale x axis into a PNG at `path`.
fn draw(path: &Path, x_label: &str, panels: &[Panel]) {
    const COLOURS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];
    let root = BitMapBackend::new(path, (1500, 480)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        let xs = panel
            .curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.0));
        let (x_min, x_max) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let y_max = panel
            .curves
            .iter()
            .flat_map(|c| c.points.iter().map(|p| p.1))
            .fold(0.0_f64, f64::max)
            .max(1.0)
            * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((x_min * 0.8..x_max * 1.25).log_scale(), 0.0..y_max)
            .unwrap();
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(panel.y)
            .label_style(("sans-serif", 14))
            .y_label_formatter(&|v| short(*v))
            .x_label_formatter(&|v| short(*v))
            .draw()
            .unwrap();
        for (curve, colour) in panel.curves.iter().zip(COLOURS) {
            chart
                .draw_series(LineSeries::new(
                    curve.points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .unwrap()
                .label(curve.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(
                    curve
                        .points
                        .iter()
                        .map(|&p| Circle::new(p, 4, colour.filled())),
                )
                .unwrap();
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .unwrap();
    }
    root.present().unwrap();
}

/// 1500 → "1.5k", 2000000 → "2M", 12.5 → "12.5".
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}
