//! Decoding JPEG and PNG files to 8-bit RGB, as PIL's `Image.open(path).convert("RGB")`: grayscale
//! is replicated into the three channels, CMYK JPEGs are converted to RGB, alpha is dropped.

use super::jpeg::JpegReader;
use super::{Rect, RgbImage, Window};
use anyhow::{anyhow, Result};

/// An encoded image whose size is known and whose pixels are decoded on demand: a JPEG decodes
/// little more than the part asked for (`super::jpeg`), a PNG is decoded whole up front.
pub enum Decoder<'a> {
    Jpeg(JpegReader<'a>),
    Decoded(RgbImage),
}

impl<'a> Decoder<'a> {
    /// Reads the header of an encoded JPEG or PNG (format told by its magic bytes).
    pub fn new(bytes: &'a [u8]) -> Result<Decoder<'a>> {
        let decoder = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Decoder::Jpeg(JpegReader::new(bytes)?)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            let rgb =
                image::load_from_memory_with_format(bytes, image::ImageFormat::Png)?.into_rgb8();
            Decoder::Decoded(RgbImage {
                width: rgb.width() as usize,
                height: rgb.height() as usize,
                data: rgb.into_raw(),
            })
        } else {
            return Err(anyhow!("not a JPEG or PNG file (unrecognised first bytes)"));
        };
        let (width, height) = decoder.size();
        if width == 0 || height == 0 {
            return Err(anyhow!("the image has no pixels ({width}x{height})"));
        }
        Ok(decoder)
    }

    /// `(width, height)` of the image.
    pub fn size(&self) -> (usize, usize) {
        match self {
            Decoder::Jpeg(reader) => reader.size(),
            Decoder::Decoded(image) => (image.width, image.height),
        }
    }

    /// At least the pixels of `rect`, with the values a full decode gives them.
    pub fn decode(self, rect: Rect) -> Result<Window> {
        match self {
            Decoder::Jpeg(reader) => reader.decode(rect),
            Decoder::Decoded(image) => Ok(Window::whole(image)),
        }
    }
}

/// Decodes an encoded JPEG or PNG to RGB, as PIL's `Image.open(f).convert("RGB")` (the pipeline
/// decodes through `Decoder`, only what its transforms read; pictures of a dataset use this).
pub fn decode(bytes: &[u8]) -> Result<RgbImage> {
    let decoder = Decoder::new(bytes)?;
    let (width, height) = decoder.size();
    Ok(decoder.decode(Rect::full(width, height))?.image)
}

/// Whether the first bytes of a file are those of a JPEG or PNG file: a cheap check made when a
/// dataset opens, so files that are not images at all are known before training starts.
pub fn looks_like_image(head: &[u8]) -> bool {
    head.starts_with(&[0xFF, 0xD8, 0xFF]) || head.starts_with(b"\x89PNG\r\n\x1a\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageEncoder;

    fn png(color: image::ExtendedColorType, width: u32, pixels: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(pixels, width, 1, color)
            .unwrap();
        out
    }

    #[test]
    fn grayscale_and_alpha_become_rgb() {
        let gray = decode(&png(image::ExtendedColorType::L8, 2, &[10, 200])).unwrap();
        assert_eq!(gray.data, vec![10, 10, 10, 200, 200, 200]);
        let rgba = decode(&png(image::ExtendedColorType::Rgba8, 1, &[1, 2, 3, 4])).unwrap();
        assert_eq!(rgba.data, vec![1, 2, 3]);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(decode(b"hello world").is_err());
        let full = png(image::ExtendedColorType::Rgb8, 2, &[1, 2, 3, 4, 5, 6]);
        assert!(decode(&full[..full.len() / 2]).is_err());
        assert!(looks_like_image(&full));
        assert!(!looks_like_image(b"GIF89a"));
    }
}
