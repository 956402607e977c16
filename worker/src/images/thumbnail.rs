//! Thumbnails for pictures of a dataset (Projector sprites, retrieval grids): the whole image,
//! shrunk with the same antialiased bilinear resampling as the pipeline so that it keeps its
//! aspect ratio and fits a square, centred on a plain background.

use super::resample::resize;
use super::{Rect, RgbImage, Window};

/// `image` scaled to fit `side x side` (the longer side becomes `side`; small images are enlarged
/// the same way), centred on `background`.
pub fn thumbnail(image: &RgbImage, side: usize, background: [u8; 3]) -> RgbImage {
    let mut out = RgbImage::new(side, side);
    for px in out.data.chunks_exact_mut(3) {
        px.copy_from_slice(&background);
    }
    if side == 0 || image.width == 0 || image.height == 0 {
        return out;
    }
    let longer = image.width.max(image.height);
    let scaled = |v: usize| ((v * side + longer / 2) / longer).clamp(1, side);
    let (w, h) = (scaled(image.width), scaled(image.height));
    // Thumbnails are small and rare; a copy into a whole-image window keeps one resampler.
    let small = resize(
        &Window::whole(image.clone()),
        Rect::full(image.width, image.height),
        w,
        h,
        Rect::full(w, h),
    );
    paste(&mut out, &small, (side - w) / 2, (side - h) / 2);
    out
}

/// Copies `tile` into `canvas` with its top-left corner at (`x`, `y`); what falls outside the
/// canvas is cut off.
pub fn paste(canvas: &mut RgbImage, tile: &RgbImage, x: usize, y: usize) {
    if x >= canvas.width || y >= canvas.height {
        return;
    }
    let w = tile.width.min(canvas.width - x);
    for row in 0..tile.height.min(canvas.height - y) {
        let from = row * tile.width * 3;
        let to = ((y + row) * canvas.width + x) * 3;
        canvas.data[to..to + w * 3].copy_from_slice(&tile.data[from..from + w * 3]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(width: usize, height: usize, rgb: [u8; 3]) -> RgbImage {
        RgbImage {
            width,
            height,
            data: rgb.repeat(width * height),
        }
    }

    fn pixel(img: &RgbImage, x: usize, y: usize) -> [u8; 3] {
        let i = (y * img.width + x) * 3;
        [img.data[i], img.data[i + 1], img.data[i + 2]]
    }

    #[test]
    fn a_wide_image_keeps_its_aspect_ratio_centred() {
        // 40x10 into 8x8: 8x2 pixels in rows 3 and 4, background above and below.
        let t = thumbnail(&solid(40, 10, [200, 10, 10]), 8, [255, 255, 255]);
        assert_eq!((t.width, t.height), (8, 8));
        for x in 0..8 {
            assert_eq!(pixel(&t, x, 2), [255, 255, 255]);
            assert_eq!(pixel(&t, x, 3), [200, 10, 10]);
            assert_eq!(pixel(&t, x, 4), [200, 10, 10]);
            assert_eq!(pixel(&t, x, 5), [255, 255, 255]);
        }
    }

    #[test]
    fn a_small_image_is_enlarged_and_paste_clips() {
        let t = thumbnail(&solid(2, 4, [0, 50, 0]), 8, [0, 0, 0]);
        assert_eq!(pixel(&t, 4, 7), [0, 50, 0]);
        assert_eq!(pixel(&t, 1, 4), [0, 0, 0]);
        let mut canvas = solid(4, 4, [1, 1, 1]);
        paste(&mut canvas, &solid(3, 3, [9, 9, 9]), 2, 2);
        assert_eq!(pixel(&canvas, 3, 3), [9, 9, 9]);
        assert_eq!(pixel(&canvas, 1, 1), [1, 1, 1]);
    }
}
