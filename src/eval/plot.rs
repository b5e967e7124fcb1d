//! compare.png: truth and reconstructions (amplitude and phase, each with a colour bar) and the FRC
//! curves, drawn into an RGB canvas and encoded with the png crate. Text uses a built-in 5x7 font, so no
//! system fonts are needed.

use super::compare::Comparison;
use super::image::Real;

const PANEL: usize = 200;
const BAR: usize = 14;
const MARGIN: usize = 16;
const TEXT_SCALE: usize = 2;
const LINE_H: usize = 8 * TEXT_SCALE + 4;

struct Canvas {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            rgb: vec![255; w * h * 3],
        }
    }

    fn put(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.w && y < self.h {
            let i = (y * self.w + x) * 3;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx, yy, c);
            }
        }
    }

    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
            if x >= 0.0 && y >= 0.0 {
                self.put(x.round() as usize, y.round() as usize, c);
                self.put(x.round() as usize, y.round() as usize + 1, c);
            }
        }
    }

    /// `text`, cut with ".." to fit `width` pixels, so that a long label never runs into the next
    /// panel's title.
    fn text_fit(&mut self, x: usize, y: usize, s: &str, width: usize, c: [u8; 3]) {
        let room = width / (6 * TEXT_SCALE);
        let chars: Vec<char> = s.chars().collect();
        let shown: String = if chars.len() <= room {
            s.to_string()
        } else {
            chars[..room.saturating_sub(2)].iter().collect::<String>() + ".."
        };
        self.text(x, y, &shown, c);
    }

    fn text(&mut self, x: usize, y: usize, s: &str, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let rows = glyph(ch.to_ascii_uppercase());
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0x10 >> col) != 0 {
                        let (px, py) = (
                            x + k * 6 * TEXT_SCALE + col * TEXT_SCALE,
                            y + r * TEXT_SCALE,
                        );
                        self.rect(px, py, TEXT_SCALE, TEXT_SCALE, c);
                    }
                }
            }
        }
    }

    /// `img` scaled to fit a PANEL x PANEL box at (x, y), coloured by `map` over [lo, hi].
    fn image(&mut self, x: usize, y: usize, img: &Real, lo: f64, hi: f64, map: fn(f64) -> [u8; 3]) {
        let scale = PANEL as f64 / img.h.max(img.w).max(1) as f64;
        let (pw, ph) = (
            (img.w as f64 * scale) as usize,
            (img.h as f64 * scale) as usize,
        );
        for py in 0..ph {
            for px in 0..pw {
                let v = img.at(
                    ((py as f64 / scale) as usize).min(img.h - 1),
                    ((px as f64 / scale) as usize).min(img.w - 1),
                );
                self.put(x + px, y + py, map(normalise(v, lo, hi)));
            }
        }
    }

    fn colour_bar(&mut self, x: usize, y: usize, lo: f64, hi: f64, map: fn(f64) -> [u8; 3]) {
        for py in 0..PANEL {
            let t = 1.0 - py as f64 / (PANEL - 1) as f64;
            for px in 0..BAR {
                self.put(x + px, y + py, map(t));
            }
        }
        self.text(x + BAR + 4, y, &format!("{hi:.3}"), BLACK);
        self.text(
            x + BAR + 4,
            y + PANEL - 7 * TEXT_SCALE,
            &format!("{lo:.3}"),
            BLACK,
        );
    }

    fn png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.w as u32, self.h as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("in-memory PNG header");
        writer
            .write_image_data(&self.rgb)
            .expect("in-memory PNG data");
        writer.finish().expect("in-memory PNG end");
        out
    }
}

const BLACK: [u8; 3] = [0, 0, 0];
const GREY: [u8; 3] = [150, 150, 150];
const LINE_COLOURS: [[u8; 3]; 8] = [
    [31, 119, 180],
    [214, 39, 40],
    [44, 160, 44],
    [148, 103, 189],
    [255, 127, 14],
    [23, 190, 207],
    [140, 86, 75],
    [127, 127, 127],
];

fn normalise(v: f64, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    }
}

fn interpolate(stops: &[[u8; 3]], t: f64) -> [u8; 3] {
    let x = t.clamp(0.0, 1.0) * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    let mut c = [0u8; 3];
    for k in 0..3 {
        c[k] = (stops[i][k] as f64 * (1.0 - f) + stops[i + 1][k] as f64 * f).round() as u8;
    }
    c
}

/// Viridis, from its published anchor colours.
fn viridis(t: f64) -> [u8; 3] {
    interpolate(
        &[
            [68, 1, 84],
            [59, 82, 139],
            [33, 145, 140],
            [94, 201, 98],
            [253, 231, 37],
        ],
        t,
    )
}

/// A cyclic map for phase (twilight-like): the ends meet.
fn cyclic(t: f64) -> [u8; 3] {
    interpolate(
        &[
            [226, 217, 226],
            [96, 126, 188],
            [47, 20, 70],
            [176, 72, 56],
            [226, 217, 226],
        ],
        t,
    )
}

/// Draw the comparison picture; returns PNG bytes.
pub fn compare_png(results: &[(String, Comparison)]) -> Vec<u8> {
    let cell = PANEL + BAR + 80;
    let rows = results.len() + 1;
    let width = MARGIN * 2 + 2 * cell;
    let frc_h = PANEL + 2 * LINE_H;
    let height = MARGIN + rows * (PANEL + LINE_H + MARGIN) + frc_h + 2 * MARGIN;
    let mut c = Canvas::new(width, height);
    let Some((_, first)) = results.first() else {
        return c.png();
    };
    let [truth_amp, _, truth_phase, _] = &first.prepared;
    // Shared colour ranges: the truth's, so that every row reads on one scale.
    let (alo, ahi) = (truth_amp.min(), truth_amp.max());
    let plo = results
        .iter()
        .map(|(_, r)| r.prepared[2].min().min(r.prepared[3].min()))
        .fold(f64::INFINITY, f64::min);
    let phi = results
        .iter()
        .map(|(_, r)| r.prepared[2].max().max(r.prepared[3].max()))
        .fold(f64::NEG_INFINITY, f64::max);
    let mut y = MARGIN;
    let row = |c: &mut Canvas, label: &str, amp: &Real, phase: &Real, y: usize| {
        let room = cell - MARGIN;
        c.text_fit(MARGIN, y, &format!("{label} AMPLITUDE"), room, BLACK);
        c.text_fit(MARGIN + cell, y, &format!("{label} PHASE"), room, BLACK);
        c.image(MARGIN, y + LINE_H, amp, alo, ahi, viridis);
        c.colour_bar(MARGIN + PANEL + 6, y + LINE_H, alo, ahi, viridis);
        c.image(MARGIN + cell, y + LINE_H, phase, plo, phi, cyclic);
        c.colour_bar(MARGIN + cell + PANEL + 6, y + LINE_H, plo, phi, cyclic);
    };
    row(&mut c, "TRUTH", truth_amp, truth_phase, y);
    for (label, r) in results {
        y += PANEL + LINE_H + MARGIN;
        row(&mut c, label, &r.prepared[1], &r.prepared[3], y);
    }
    y += PANEL + LINE_H + MARGIN;
    for (part, x0) in [(0usize, MARGIN), (1, MARGIN + cell)] {
        let name = if part == 0 {
            "FRC AMPLITUDE"
        } else {
            "FRC PHASE"
        };
        c.text(x0, y, name, BLACK);
        let (px, py, pw, ph) = (
            x0 as f64,
            (y + LINE_H) as f64,
            (cell - 40) as f64,
            PANEL as f64,
        );
        c.line((px, py), (px, py + ph), BLACK);
        c.line((px, py + ph), (px + pw, py + ph), BLACK);
        for threshold in [0.5, 1.0 / 7.0] {
            let ty = py + ph * (1.0 - threshold);
            c.line((px, ty), (px + pw, ty), GREY);
        }
        for (k, (label, r)) in results.iter().enumerate() {
            let curve = &r.frc_curves[part];
            let colour = LINE_COLOURS[k % LINE_COLOURS.len()];
            let n = curve.len().max(2) - 1;
            let point = |i: usize| {
                (
                    px + pw * i as f64 / n as f64,
                    py + ph * (1.0 - curve[i].clamp(0.0, 1.0)),
                )
            };
            for i in 1..curve.len() {
                c.line(point(i - 1), point(i), colour);
            }
            c.text_fit(
                x0 + (cell - 40) / 2,
                y + LINE_H + PANEL / 3 + k * LINE_H,
                label,
                (cell - 40) / 2,
                colour,
            );
        }
        c.text(x0, y + LINE_H + PANEL + 4, "0     RING    CORNER", BLACK);
    }
    c.png()
}

/// A curve of positive values against their index (a cost per epoch), on a log10 axis, with its
/// first and last values written beside it.
pub fn curve_png(title: &str, values: &[f64]) -> Vec<u8> {
    let (pw, ph) = (2 * PANEL, PANEL);
    let (w, h) = (
        MARGIN + pw + MARGIN,
        MARGIN + 2 * LINE_H + ph + LINE_H + MARGIN,
    );
    let mut c = Canvas::new(w, h);
    c.text(MARGIN, MARGIN, title, BLACK);
    let (px, py) = (MARGIN as f64, (MARGIN + 2 * LINE_H) as f64);
    let (pwf, phf) = (pw as f64, ph as f64);
    c.line((px, py), (px, py + phf), BLACK);
    c.line((px, py + phf), (px + pwf, py + phf), BLACK);
    let logs: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.log10())
        .collect();
    if let (Some(first), Some(last)) = (values.first(), values.last()) {
        c.text(
            MARGIN,
            MARGIN + LINE_H,
            &format!("{first:.3e} TO {last:.3e}"),
            GREY,
        );
    }
    if logs.len() >= 2 {
        let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let span = (hi - lo).max(1e-12);
        let last = (logs.len() - 1) as f64;
        let point = |i: usize| {
            (
                px + pwf * i as f64 / last,
                py + phf * (1.0 - (logs[i] - lo) / span),
            )
        };
        for i in 1..logs.len() {
            c.line(point(i - 1), point(i), LINE_COLOURS[0]);
        }
    }
    c.text(
        MARGIN,
        MARGIN + 2 * LINE_H + ph + 4,
        &format!("EPOCH 1 TO {} (LOG SCALE)", values.len()),
        BLACK,
    );
    c.png()
}

/// 5x7 glyphs, one byte per row, bit 4 = leftmost column. Unknown characters draw as blanks.
fn glyph(ch: char) -> [u8; 7] {
    match ch {
        'A' => [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'B' => [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
        'C' => [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
        'D' => [0x1e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1e],
        'E' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
        'F' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
        'G' => [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
        'H' => [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'I' => [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
        'M' => [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'P' => [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
        'Q' => [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
        'R' => [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
        'S' => [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
        'T' => [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
        'X' => [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04],
        'Z' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        '.' => [0, 0, 0, 0, 0, 0x0c, 0x0c],
        '-' => [0, 0, 0, 0x1f, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1f, 0x04, 0x04, 0],
        '_' => [0, 0, 0, 0, 0, 0, 0x1f],
        ':' => [0, 0x0c, 0x0c, 0, 0x0c, 0x0c, 0],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        _ => [0; 7],
    }
}

/// One image with a title and a colour bar (viridis, or the cyclic map over [−π, π] for a phase).
pub fn image_png(title: &str, img: &Real, phase: bool) -> Vec<u8> {
    let (w, h) = (
        MARGIN + PANEL + 8 + BAR + 12 * 6 * TEXT_SCALE,
        MARGIN + LINE_H + PANEL + MARGIN,
    );
    let mut canvas = Canvas::new(w, h);
    canvas.text(MARGIN, MARGIN, title, BLACK);
    let y = MARGIN + LINE_H;
    let (lo, hi, map): (f64, f64, fn(f64) -> [u8; 3]) = if phase {
        (-std::f64::consts::PI, std::f64::consts::PI, cyclic)
    } else {
        (img.min(), img.max(), viridis)
    };
    canvas.image(MARGIN, y, img, lo, hi, map);
    canvas.colour_bar(MARGIN + PANEL + 8, y, lo, hi, map);
    canvas.png()
}

/// A panel of values against dose: one line per (label, [(dose, value)]) series.
pub struct DosePanel {
    pub title: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Panels two to a row, doses on a log axis, each series in the same colour in every panel, and one
/// legend below.
pub fn dose_panels_png(panels: &[DosePanel]) -> Vec<u8> {
    let (pw, ph) = (2 * PANEL, PANEL);
    let cell_w = MARGIN + 60 + pw + MARGIN;
    let cell_h = LINE_H + ph + 2 * LINE_H + MARGIN;
    let rows = panels.len().div_ceil(2);
    let mut labels: Vec<&str> = Vec::new();
    for panel in panels {
        for (label, _) in &panel.series {
            if !labels.contains(&label.as_str()) {
                labels.push(label);
            }
        }
    }
    let (w, h) = (
        2 * cell_w,
        MARGIN + rows * cell_h + labels.len() * LINE_H + MARGIN,
    );
    let mut c = Canvas::new(w, h);
    let colour = |label: &str| {
        let k = labels.iter().position(|l| *l == label).unwrap_or(0);
        LINE_COLOURS[k % LINE_COLOURS.len()]
    };
    for (k, panel) in panels.iter().enumerate() {
        let (x0, y0) = ((k % 2) * cell_w + MARGIN, MARGIN + (k / 2) * cell_h);
        c.text_fit(x0, y0, &panel.title, cell_w - MARGIN, BLACK);
        let points: Vec<(f64, f64)> = panel
            .series
            .iter()
            .flat_map(|(_, s)| s.iter().copied())
            .filter(|(d, v)| *d > 0.0 && v.is_finite())
            .collect();
        let (px, py) = ((x0 + 60) as f64, (y0 + LINE_H) as f64);
        let (pwf, phf) = (pw as f64, ph as f64);
        c.line((px, py), (px, py + phf), BLACK);
        c.line((px, py + phf), (px + pwf, py + phf), BLACK);
        if points.is_empty() {
            continue;
        }
        let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| {
            points.iter().map(pick).fold(init, f)
        };
        let (dlo, dhi) = (
            fold(f64::min, f64::INFINITY, |p| p.0.log10()),
            fold(f64::max, f64::NEG_INFINITY, |p| p.0.log10()),
        );
        let (vlo, vhi) = (
            fold(f64::min, f64::INFINITY, |p| p.1),
            fold(f64::max, f64::NEG_INFINITY, |p| p.1),
        );
        let pad = ((vhi - vlo) * 0.08).max(1e-3);
        let (vlo, vhi) = (vlo - pad, vhi + pad);
        let x_of = |d: f64| {
            if dhi > dlo {
                px + 10.0 + (pwf - 20.0) * (d.log10() - dlo) / (dhi - dlo)
            } else {
                px + pwf / 2.0
            }
        };
        let y_of = |v: f64| py + phf * (1.0 - (v - vlo) / (vhi - vlo));
        c.text(x0, py as usize, &format!("{vhi:.2}"), GREY);
        c.text(
            x0,
            (py + phf) as usize - 7 * TEXT_SCALE,
            &format!("{vlo:.2}"),
            GREY,
        );
        let mut doses: Vec<f64> = points.iter().map(|p| p.0).collect();
        doses.sort_by(f64::total_cmp);
        doses.dedup();
        for d in doses {
            let x = x_of(d);
            c.line((x, py + phf), (x, py + phf + 4.0), BLACK);
            let label = format!("{d:.0E}");
            let half = label.len() * 3 * TEXT_SCALE;
            c.text(
                (x as usize).saturating_sub(half),
                (py + phf) as usize + 6,
                &label,
                BLACK,
            );
        }
        for (label, series) in &panel.series {
            let mut s: Vec<(f64, f64)> = series
                .iter()
                .copied()
                .filter(|(d, v)| *d > 0.0 && v.is_finite())
                .collect();
            s.sort_by(|a, b| a.0.total_cmp(&b.0));
            let col = colour(label);
            for pair in s.windows(2) {
                c.line(
                    (x_of(pair[0].0), y_of(pair[0].1)),
                    (x_of(pair[1].0), y_of(pair[1].1)),
                    col,
                );
            }
            for &(d, v) in &s {
                let (x, y) = (x_of(d) as usize, y_of(v) as usize);
                c.rect(x.saturating_sub(3), y.saturating_sub(3), 7, 7, col);
            }
        }
    }
    let legend_y = MARGIN + rows * cell_h;
    for (k, label) in labels.iter().enumerate() {
        let y = legend_y + k * LINE_H;
        c.rect(MARGIN, y + 2, 24, 8, colour(label));
        c.text(MARGIN + 32, y, label, BLACK);
    }
    c.png()
}

/// A grid of images on one colour scale: a title, column labels, and per row a label and one image
/// (or a blank) per column; amplitudes in viridis, phases in the cyclic map.
pub fn image_grid_png(
    title: &str,
    columns: &[String],
    rows: &[(String, Vec<Option<Real>>)],
    (lo, hi): (f64, f64),
    phase: bool,
) -> Vec<u8> {
    let map: fn(f64) -> [u8; 3] = if phase { cyclic } else { viridis };
    let label_w = 12 * 6 * TEXT_SCALE;
    let cell = PANEL + 8;
    // Each row as tall as its tallest image once scaled to the panel (wide images leave no band of
    // white), and never shorter than the colour bar needs for the first row.
    let scaled_h = |img: &Real| (img.h as f64 * PANEL as f64 / img.h.max(img.w) as f64) as usize;
    let row_h: Vec<usize> = rows
        .iter()
        .map(|(_, images)| {
            images
                .iter()
                .flatten()
                .map(scaled_h)
                .max()
                .unwrap_or(PANEL)
                .max(3 * LINE_H)
                + 8
        })
        .collect();
    let top = MARGIN + 2 * LINE_H;
    let body = row_h.iter().sum::<usize>().max(PANEL + 8);
    let (w, h) = (
        MARGIN + label_w + columns.len() * cell + BAR + 12 * 6 * TEXT_SCALE + MARGIN,
        top + body + MARGIN,
    );
    let mut c = Canvas::new(w, h);
    c.text(MARGIN, MARGIN, title, BLACK);
    for (k, name) in columns.iter().enumerate() {
        c.text_fit(
            MARGIN + label_w + k * cell,
            MARGIN + LINE_H,
            name,
            cell - 4,
            BLACK,
        );
    }
    let mut y = top;
    for ((label, images), height) in rows.iter().zip(&row_h) {
        c.text_fit(
            MARGIN,
            y + height / 2 - LINE_H / 2,
            label,
            label_w - 4,
            BLACK,
        );
        for (k, img) in images.iter().enumerate() {
            let x = MARGIN + label_w + k * cell;
            match img {
                Some(img) if img.h > 0 && img.w > 0 => c.image(x, y, img, lo, hi, map),
                _ => c.rect(x, y, PANEL, height - 8, [235, 235, 235]),
            }
        }
        y += height;
    }
    c.colour_bar(MARGIN + label_w + columns.len() * cell, top, lo, hi, map);
    c.png()
}
