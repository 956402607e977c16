//! SVG -> PNG for papers and slides, in pure Rust (resvg), with the DejaVu Sans font compiled into
//! the binary: the PNGs look the same on every machine and no system fonts are needed. Every font
//! family an SVG names (plotters writes `sans-serif`) is drawn with DejaVu Sans.

use anyhow::{anyhow, Context, Result};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "DejaVu Sans";

fn font_database() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT.to_vec());
        db.set_sans_serif_family(FAMILY);
        db.set_serif_family(FAMILY);
        db.set_monospace_family(FAMILY);
        db.set_cursive_family(FAMILY);
        db.set_fantasy_family(FAMILY);
        Arc::new(db)
    })
    .clone()
}

/// Rasterises an SVG document at its own size (`scale` 2 gives a sharper image for slides).
pub fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>> {
    rasterise(svg, scale)?
        .encode_png()
        .map_err(|e| anyhow!("cannot encode the PNG: {e}"))
}

fn rasterise(svg: &str, scale: f32) -> Result<resvg::tiny_skia::Pixmap> {
    let options = usvg::Options {
        font_family: FAMILY.to_string(),
        fontdb: font_database(),
        ..usvg::Options::default()
    };
    let tree =
        usvg::Tree::from_str(svg, &options).map_err(|e| anyhow!("cannot parse the SVG: {e}"))?;
    let size = tree
        .size()
        .to_int_size()
        .scale_by(scale)
        .ok_or_else(|| anyhow!("the SVG has an empty size ({:?})", tree.size()))?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| anyhow!("cannot allocate a {}x{} image", size.width(), size.height()))?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    Ok(pixmap)
}

/// Writes `<stem>.svg` and `<stem>.png` (at twice the SVG's size) atomically.
pub fn write_svg_and_png(folder: &Path, stem: &str, svg: &str) -> Result<()> {
    use crate::fsutil::write_atomic;
    write_atomic(&folder.join(format!("{stem}.svg")), svg.as_bytes())?;
    let png = svg_to_png(svg, 2.0).with_context(|| format!("rendering {stem}.png"))?;
    write_atomic(&folder.join(format!("{stem}.png")), &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Width and height from the PNG's IHDR chunk.
    pub fn png_size(png: &[u8]) -> (u32, u32) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
        (w, h)
    }

    #[test]
    fn text_is_drawn_with_the_embedded_font() {
        let with_text = |t: &str| {
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"120\" height=\"40\">\
                 <rect width=\"120\" height=\"40\" fill=\"white\"/>\
                 <text x=\"5\" y=\"25\" font-family=\"sans-serif\" font-size=\"16\">{t}</text></svg>"
            )
        };
        let dark = |t: &str| {
            let pixmap = rasterise(&with_text(t), 1.0).unwrap();
            pixmap.pixels().iter().filter(|p| p.red() < 100).count()
        };
        assert_eq!(dark(""), 0);
        // Eight glyphs at 16 px cover well over a hundred dark pixels; without a font, none.
        assert!(dark("loss 0.5") > 100, "{}", dark("loss 0.5"));
        assert_eq!(
            png_size(&svg_to_png(&with_text("x"), 1.0).unwrap()),
            (120, 40)
        );
        assert_eq!(
            png_size(&svg_to_png(&with_text("x"), 2.0).unwrap()),
            (240, 80)
        );
    }

    #[test]
    fn broken_svg_is_an_error() {
        assert!(svg_to_png("<svg", 1.0).is_err());
    }
}
