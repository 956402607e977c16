//! Decoding JPEG and PNG files to 8-bit RGB, as PIL's `Image.open(path).convert("RGB")`: grayscale
//! is replicated into the three channels, CMYK JPEGs are converted to RGB, alpha is dropped.

use super::RgbImage;
use anyhow::{anyhow, Result};

/// Decodes an encoded JPEG or PNG (format told by its magic bytes) to RGB.
pub fn decode(bytes: &[u8]) -> Result<RgbImage> {
    let image = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        decode_jpeg(bytes)?
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let rgb = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)?.into_rgb8();
        RgbImage {
            width: rgb.width() as usize,
            height: rgb.height() as usize,
            data: rgb.into_raw(),
        }
    } else {
        return Err(anyhow!("not a JPEG or PNG file (unrecognised first bytes)"));
    };
    if image.width == 0 || image.height == 0 {
        return Err(anyhow!(
            "the image has no pixels ({}x{})",
            image.width,
            image.height
        ));
    }
    Ok(image)
}

/// PIL's CMYK to RGB: `(255 - k) - c * (255 - k) / 255` with its rounded division by 255.
fn cmyk_to_rgb(c: u8, k: u8) -> u8 {
    let nk = 255 - k as u32;
    let t = c as u32 * nk + 128;
    (nk - ((t + (t >> 8)) >> 8)) as u8
}

fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    let pixels = decoder.decode()?;
    let info = decoder
        .info()
        .ok_or_else(|| anyhow!("JPEG without a frame header"))?;
    let data = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
        jpeg_decoder::PixelFormat::CMYK32 => pixels
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]].map(|c| cmyk_to_rgb(c, p[3])))
            .collect(),
        jpeg_decoder::PixelFormat::L16 => {
            return Err(anyhow!("12-bit JPEGs are not supported (8-bit only)"))
        }
    };
    let (width, height) = (info.width as usize, info.height as usize);
    if data.len() != width * height * 3 {
        return Err(anyhow!("JPEG decoded to a wrong number of pixels"));
    }
    Ok(RgbImage {
        width,
        height,
        data,
    })
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
