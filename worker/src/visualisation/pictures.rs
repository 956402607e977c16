//! Pictures of samples: thumbnails read from a dataset's image files (on a few threads), tiles
//! with coloured frames, and PNG encoding.

use crate::datasets::Dataset;
use crate::images::{decode, paste, thumbnail, RgbImage};
use anyhow::{anyhow, Context, Result};
use image::ImageEncoder;

/// What a thumbnail is centred on, and the background of atlases.
pub const BACKGROUND: [u8; 3] = [255, 255, 255];
/// Shown instead of an image that cannot be read (the run goes on; a warning names the file).
const UNREADABLE: [u8; 3] = [128, 128, 128];

/// Square thumbnails of `side` pixels of the given samples, in order; `None` when the dataset
/// has no image files.
pub fn thumbnails(dataset: &dyn Dataset, samples: &[usize], side: usize) -> Option<Vec<RgbImage>> {
    dataset.image_file(*samples.first()?)?;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let per_thread = samples.len().div_ceil(cores.clamp(1, 8)).max(1);
    let load = |sample: usize| -> RgbImage {
        let Some(path) = dataset.image_file(sample) else {
            return solid(side, UNREADABLE);
        };
        let image = std::fs::read(path)
            .with_context(|| format!("cannot read image {}", path.display()))
            .and_then(|bytes| {
                decode(&bytes).with_context(|| format!("cannot decode image {}", path.display()))
            });
        match image {
            Ok(image) => thumbnail(&image, side, BACKGROUND),
            Err(e) => {
                eprintln!("warning: a grey tile stands for sample {sample}: {e:#}");
                solid(side, UNREADABLE)
            }
        }
    };
    Some(std::thread::scope(|s| {
        let handles: Vec<_> = samples
            .chunks(per_thread)
            .map(|chunk| s.spawn(move || chunk.iter().map(|&i| load(i)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    }))
}

/// A `side x side` image of one colour.
pub fn solid(side: usize, rgb: [u8; 3]) -> RgbImage {
    RgbImage {
        width: side,
        height: side,
        data: rgb.repeat(side * side),
    }
}

/// `tile` inside a frame of `width` pixels of colour `frame`.
pub fn framed(tile: &RgbImage, frame: [u8; 3], width: usize) -> RgbImage {
    let mut out = RgbImage {
        width: tile.width + 2 * width,
        height: tile.height + 2 * width,
        data: frame.repeat((tile.width + 2 * width) * (tile.height + 2 * width)),
    };
    paste(&mut out, tile, width, width);
    out
}

/// An image filled with the background colour.
pub fn canvas(width: usize, height: usize) -> RgbImage {
    RgbImage {
        width,
        height,
        data: BACKGROUND.repeat(width * height),
    }
}

/// The image as an 8-bit RGB PNG.
pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &image.data,
            image.width as u32,
            image.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| anyhow!("cannot encode a {}x{} PNG: {e}", image.width, image.height))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_tile_has_its_frame_all_round() {
        let f = framed(&solid(2, [1, 2, 3]), [9, 9, 9], 1);
        assert_eq!((f.width, f.height), (4, 4));
        let px = |x: usize, y: usize| f.data[(y * 4 + x) * 3];
        assert_eq!(
            [px(0, 0), px(3, 0), px(0, 3), px(3, 3), px(1, 1), px(2, 2)],
            [9, 9, 9, 9, 1, 1]
        );
        let png = encode_png(&f).unwrap();
        let back = image::load_from_memory(&png).unwrap().into_rgb8();
        assert_eq!(back.into_raw(), f.data);
    }
}
