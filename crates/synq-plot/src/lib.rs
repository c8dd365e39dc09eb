//! What synq's figures share (`synq sim --plot`, `synq-bench --latency-plot`): the font.
//!
//! plotters, with its `ab_glyph` feature, measures and draws text only with a font the
//! program registers, for SVG as well as PNG. Cargo unifies features across a workspace
//! build, so every figure of the workspace needs one as soon as any needs one.

use std::sync::OnceLock;

/// Where TrueType fonts usually are, in order; `SYNQ_FONT` comes first.
pub const FONTS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
];

/// Register the first readable font (`SYNQ_FONT`, then [`FONTS`]) as "sans-serif", once
/// per process; later calls return the first call's outcome. The error says what to
/// install; callers prefix their flag.
pub fn register_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates = std::env::var("SYNQ_FONT")
            .ok()
            .into_iter()
            .chain(FONTS.iter().map(|s| (*s).to_string()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // plotters keeps fonts for the process's life.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                let normal = plotters::style::FontStyle::Normal;
                if plotters::style::register_font("sans-serif", normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err("no TrueType font found for the text (install fonts-dejavu-core, or set SYNQ_FONT=/path/to/font.ttf)".into())
    })
    .clone()
}
