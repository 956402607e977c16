//! A report page under construction: headings, tables and figures. Each figure is written as
//! `report_figures/<name>.svg` (shown in the page) and `<name>.png` (for papers and slides).

use super::png;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Where a page keeps its figures, relative to `report.html`.
pub const FIGURES: &str = "report_figures";

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub struct Page {
    folder: PathBuf,
    html: String,
}

impl Page {
    /// Starts `folder/report.html`; creates `folder/report_figures/` (so an unwritable folder is
    /// found out before any work is done).
    pub fn new(folder: &Path, title: &str) -> Result<Page> {
        let figures = folder.join(FIGURES);
        std::fs::create_dir_all(&figures)
            .with_context(|| format!("cannot create {}", figures.display()))?;
        let html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\n\
             <style>body{{font-family:sans-serif;margin:2em;max-width:1250px}}\
             table{{border-collapse:collapse;margin:0.5em 0}}\
             td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}\
             td:first-child,th:first-child{{text-align:left}}img{{display:block;margin:0.5em 0}}\
             figcaption{{font-size:small;color:#555}}</style></head><body>\n<h1>{t}</h1>\n",
            t = escape(title)
        );
        Ok(Page {
            folder: folder.to_path_buf(),
            html,
        })
    }

    pub fn heading(&mut self, text: &str) {
        self.html.push_str(&format!("<h2>{}</h2>\n", escape(text)));
    }

    /// A paragraph of trusted HTML (callers escape what comes from files).
    pub fn paragraph(&mut self, html: &str) {
        self.html.push_str(&format!("<p>{html}</p>\n"));
    }

    /// Raw HTML (callers escape what comes from files).
    pub fn raw(&mut self, html: &str) {
        self.html.push_str(html);
        self.html.push('\n');
    }

    pub fn list(&mut self, items: &[String]) {
        self.html.push_str("<ul>\n");
        for i in items {
            self.html.push_str(&format!("<li>{}</li>\n", escape(i)));
        }
        self.html.push_str("</ul>\n");
    }

    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        self.html.push_str("<table><tr>");
        for h in header {
            self.html.push_str(&format!("<th>{}</th>", escape(h)));
        }
        self.html.push_str("</tr>\n");
        for r in rows {
            self.html.push_str("<tr>");
            for c in r {
                self.html.push_str(&format!("<td>{}</td>", escape(c)));
            }
            self.html.push_str("</tr>\n");
        }
        self.html.push_str("</table>\n");
    }

    /// Writes the figure's SVG and PNG and shows the SVG at its own size.
    pub fn figure(&mut self, name: &str, svg: &str) -> Result<()> {
        png::write_svg_and_png(&self.folder.join(FIGURES), name, svg)?;
        let (w, h) = svg_size(svg).unwrap_or((800, 400));
        self.html.push_str(&format!(
            "<figure><img src=\"{FIGURES}/{n}.svg\" width=\"{w}\" height=\"{h}\" alt=\"{n}\">\
             <figcaption><a href=\"{FIGURES}/{n}.png\">{n}.png</a></figcaption></figure>\n",
            n = escape(name)
        ));
        Ok(())
    }

    /// Copies a PNG drawn elsewhere (e.g. by the worker) to `report_figures/<name>.png`, so the
    /// report folder is complete on its own, and shows it at its own size (narrowed to the page
    /// when wider).
    pub fn picture(&mut self, name: &str, png: &Path) -> Result<()> {
        let bytes = std::fs::read(png).with_context(|| format!("cannot read {}", png.display()))?;
        let (w, h) =
            png_size(&bytes).with_context(|| format!("{} is not a PNG image", png.display()))?;
        crate::fsutil::write_atomic(
            &self.folder.join(FIGURES).join(format!("{name}.png")),
            &bytes,
        )?;
        self.html.push_str(&format!(
            "<figure><img src=\"{FIGURES}/{n}.png\" width=\"{w}\" height=\"{h}\" \
             style=\"max-width:100%;height:auto\" alt=\"{n}\"></figure>\n",
            n = escape(name)
        ));
        Ok(())
    }

    /// Writes `report.html` atomically.
    pub fn finish(mut self) -> Result<()> {
        self.html.push_str("</body></html>\n");
        crate::fsutil::write_atomic(&self.folder.join("report.html"), self.html.as_bytes())
    }
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

/// The `width` and `height` attributes of the root `<svg>` element.
fn svg_size(svg: &str) -> Option<(u32, u32)> {
    let head = &svg[..svg.find('>')?];
    let attr = |name: &str| -> Option<u32> {
        let start = head.find(&format!("{name}=\""))? + name.len() + 2;
        let end = start + head[start..].find('"')?;
        head[start..end].trim_end_matches("px").parse().ok()
    };
    Some((attr("width")?, attr("height")?))
}
