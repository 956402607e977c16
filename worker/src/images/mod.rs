//! The image pipeline: decode a JPEG or PNG file to RGB, apply the configured transforms (resize,
//! crops, flips) with the exact arithmetic of torchvision on PIL images, and write the result as
//! normalised floats in the input convention of the trunk. Datasets that read image files
//! (`crate::datasets::ImageDataset`) use it per sample; it knows nothing about labels or layouts.

mod decode;
mod jpeg;
mod pipeline;
#[cfg(test)]
mod reference_tests;
mod resample;
mod thumbnail;
mod to_tensor;
mod transforms;

pub use decode::{decode, looks_like_image, Decoder};
pub use pipeline::ImagePipeline;
pub use thumbnail::{paste, thumbnail};

/// An 8-bit RGB image, pixels row by row, three bytes each.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: usize, height: usize) -> RgbImage {
        RgbImage {
            width,
            height,
            data: vec![0; width * height * 3],
        }
    }

    /// The pixels of `rect`, which must lie inside the image.
    pub fn crop(&self, rect: Rect) -> RgbImage {
        debug_assert!(rect.x + rect.width <= self.width && rect.y + rect.height <= self.height);
        let mut data = Vec::with_capacity(rect.width * rect.height * 3);
        for row in rect.y..rect.y + rect.height {
            let start = (row * self.width + rect.x) * 3;
            data.extend_from_slice(&self.data[start..start + rect.width * 3]);
        }
        RgbImage {
            width: rect.width,
            height: rect.height,
            data,
        }
    }

    /// Mirrors the image left to right, in place.
    pub fn flip_horizontal(&mut self) {
        let w = self.width;
        for row in self.data.chunks_exact_mut(w * 3) {
            for x in 0..w / 2 {
                let (a, b) = (x * 3, (w - 1 - x) * 3);
                for c in 0..3 {
                    row.swap(a + c, b + c);
                }
            }
        }
    }
}

/// Decoded pixels of part of an image: `image` holds the image's pixels from column `x`, row `y`
/// on (a decoder may decode more than it was asked for, never less).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub image: RgbImage,
    pub x: usize,
    pub y: usize,
}

impl Window {
    /// A whole image as a window.
    pub fn whole(image: RgbImage) -> Window {
        Window { image, x: 0, y: 0 }
    }

    /// The pixels of `rect` (in the full image's coordinates), which must lie inside the window.
    pub fn crop(&self, rect: Rect) -> RgbImage {
        debug_assert!(rect.x >= self.x && rect.y >= self.y);
        self.image.crop(Rect {
            x: rect.x - self.x,
            y: rect.y - self.y,
            ..rect
        })
    }
}

/// A rectangle of pixels: left column, top row, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Rect {
    pub fn full(width: usize, height: usize) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width,
            height,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(width: usize, height: usize) -> RgbImage {
        RgbImage {
            width,
            height,
            data: (0..width * height * 3).map(|v| v as u8).collect(),
        }
    }

    #[test]
    fn crop_takes_the_rectangle() {
        let img = numbered(4, 3);
        let c = img.crop(Rect {
            x: 1,
            y: 1,
            width: 2,
            height: 2,
        });
        assert_eq!(c.data, vec![15, 16, 17, 18, 19, 20, 27, 28, 29, 30, 31, 32]);
    }

    #[test]
    fn flip_mirrors_each_row_keeping_channel_order() {
        let mut img = numbered(3, 1);
        img.flip_horizontal();
        assert_eq!(img.data, vec![6, 7, 8, 3, 4, 5, 0, 1, 2]);
    }
}
