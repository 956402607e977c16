//! Bilinear resampling with PIL's arithmetic (`Image.resize(size, Image.BILINEAR)`), which is what
//! torchvision's `Resize` and `RandomResizedCrop` run on PIL images: a triangle filter widened by the
//! downscaling factor (antialiasing), weights quantised to 22-bit fixed point, a horizontal pass
//! rounded to 8 bits, then a vertical pass. Reproducing it step by step gives PIL's pixels exactly,
//! where a generic resizer differs by several levels.
//!
//! Only a region of the output may be asked for: a resize followed by a crop then computes just
//! the cropped pixels, with the same values as resizing everything and cropping afterwards.

use super::{Rect, RgbImage};

/// Fixed-point precision of PIL's 8-bit resampling (`PRECISION_BITS = 32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// For each output index of a region: the first input index, the number of taps, and the taps'
/// fixed-point weights (`ksize` slots per output, unused ones zero).
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

/// PIL's `precompute_coeffs` for a bilinear filter (support 1) followed by
/// `normalize_coeffs_8bpc`, for outputs `first..first + count` of `out_size`.
fn coefficients(in_size: usize, out_size: usize, first: usize, count: usize) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(count);
    let mut weights = vec![0i32; count * ksize];
    let mut taps = vec![0f64; ksize];
    for (o, xx) in (first..first + count).enumerate() {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero; both bounds are clamped to the image.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut total = 0.0;
        for (x, tap) in taps.iter_mut().enumerate().take(n) {
            let w = triangle((x as f64 + xmin as f64 - center + 0.5) * ss);
            *tap = w;
            total += w;
        }
        let fixed_row = &mut weights[o * ksize..o * ksize + n];
        for (fixed, &tap) in fixed_row.iter_mut().zip(&taps[..n]) {
            let w = if total != 0.0 { tap / total } else { tap };
            let scaled = w * (1u32 << PRECISION_BITS) as f64;
            *fixed = if w < 0.0 {
                (scaled - 0.5) as i32
            } else {
                (scaled + 0.5) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coefficients {
        bounds,
        ksize,
        weights,
    }
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    if acc >= (1 << PRECISION_BITS << 8) {
        255
    } else if acc <= 0 {
        0
    } else {
        (acc >> PRECISION_BITS) as u8
    }
}

/// Resizes the part `src_rect` of `src` (as if it had been cropped out first) to
/// `out_width` x `out_height`, and returns the pixels of `region` of that output.
pub fn resize(
    src: &RgbImage,
    src_rect: Rect,
    out_width: usize,
    out_height: usize,
    region: Rect,
) -> RgbImage {
    debug_assert!(region.x + region.width <= out_width && region.y + region.height <= out_height);
    let need_horizontal = out_width != src_rect.width;
    let need_vertical = out_height != src_rect.height;
    if !need_horizontal && !need_vertical {
        return src.crop(Rect {
            x: src_rect.x + region.x,
            y: src_rect.y + region.y,
            width: region.width,
            height: region.height,
        });
    }
    // Input rows the vertical pass reads (relative to src_rect), and its coefficients.
    let vertical =
        need_vertical.then(|| coefficients(src_rect.height, out_height, region.y, region.height));
    let (row_first, row_end) = match &vertical {
        Some(v) => {
            let first = v.bounds.iter().map(|b| b.0).min().unwrap_or(0);
            let end = v.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(0);
            (first, end)
        }
        None => (region.y, region.y + region.height),
    };

    // Horizontal pass: rows row_first..row_end, output columns of the region.
    let horizontal_out = if need_horizontal {
        let h = coefficients(src_rect.width, out_width, region.x, region.width);
        let mut tmp = RgbImage::new(region.width, row_end - row_first);
        for (t, row) in (row_first..row_end).enumerate() {
            let src_row = &src.data[((src_rect.y + row) * src.width + src_rect.x) * 3..]
                [..src_rect.width * 3];
            let out_row = &mut tmp.data[t * region.width * 3..(t + 1) * region.width * 3];
            for (o, out) in out_row.chunks_exact_mut(3).enumerate() {
                let (xmin, n) = h.bounds[o];
                let k = &h.weights[o * h.ksize..o * h.ksize + n];
                let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
                for (i, &w) in k.iter().enumerate() {
                    let p = &src_row[(xmin + i) * 3..(xmin + i) * 3 + 3];
                    acc[0] += p[0] as i32 * w;
                    acc[1] += p[1] as i32 * w;
                    acc[2] += p[2] as i32 * w;
                }
                out[0] = clip8(acc[0]);
                out[1] = clip8(acc[1]);
                out[2] = clip8(acc[2]);
            }
        }
        tmp
    } else {
        src.crop(Rect {
            x: src_rect.x + region.x,
            y: src_rect.y + row_first,
            width: region.width,
            height: row_end - row_first,
        })
    };

    let Some(v) = vertical else {
        return horizontal_out;
    };
    // Vertical pass over the horizontally resized rows.
    let width3 = region.width * 3;
    let mut out = RgbImage::new(region.width, region.height);
    let mut acc = vec![0i32; width3];
    for (o, out_row) in out.data.chunks_exact_mut(width3).enumerate() {
        let (ymin, n) = v.bounds[o];
        let k = &v.weights[o * v.ksize..o * v.ksize + n];
        acc.fill(1 << (PRECISION_BITS - 1));
        for (i, &w) in k.iter().enumerate() {
            let row = ymin + i - row_first;
            let src_row = &horizontal_out.data[row * width3..(row + 1) * width3];
            for (a, &p) in acc.iter_mut().zip(src_row) {
                *a += p as i32 * w;
            }
        }
        for (dst, &a) in out_row.iter_mut().zip(&acc) {
            *dst = clip8(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> RgbImage {
        let mut img = RgbImage::new(width, height);
        for y in 0..height {
            for x in 0..width {
                let p = &mut img.data[(y * width + x) * 3..][..3];
                p[0] = (x * 255 / width.max(1)) as u8;
                p[1] = (y * 255 / height.max(1)) as u8;
                p[2] = ((x * 7 + y * 13) % 256) as u8;
            }
        }
        img
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(500, 341), (375, 256), (100, 227), (227, 227), (7, 3)] {
            let c = coefficients(i, o, 0, o);
            for (idx, &(_, n)) in c.bounds.iter().enumerate() {
                let sum: i32 = c.weights[idx * c.ksize..idx * c.ksize + n].iter().sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= n as i32,
                    "{i}->{o}: {sum}"
                );
            }
        }
    }

    #[test]
    fn a_region_equals_the_crop_of_the_full_resize() {
        let img = gradient(50, 37);
        let full_rect = Rect::full(50, 37);
        let full = resize(&img, full_rect, 34, 25, Rect::full(34, 25));
        let region = Rect {
            x: 5,
            y: 3,
            width: 20,
            height: 17,
        };
        assert_eq!(resize(&img, full_rect, 34, 25, region), full.crop(region));
        // Upscaling and one-axis resizes too.
        let up = resize(&img, full_rect, 80, 37, Rect::full(80, 37));
        let r = Rect {
            x: 10,
            y: 4,
            width: 30,
            height: 9,
        };
        assert_eq!(resize(&img, full_rect, 80, 37, r), up.crop(r));
    }

    #[test]
    fn a_source_rectangle_is_a_crop_first() {
        let img = gradient(40, 30);
        let rect = Rect {
            x: 7,
            y: 5,
            width: 21,
            height: 19,
        };
        let cropped = img.crop(rect);
        assert_eq!(
            resize(&img, rect, 11, 13, Rect::full(11, 13)),
            resize(&cropped, Rect::full(21, 19), 11, 13, Rect::full(11, 13))
        );
    }

    #[test]
    fn constant_images_stay_constant() {
        let mut img = RgbImage::new(31, 17);
        img.data.fill(200);
        let out = resize(&img, Rect::full(31, 17), 9, 40, Rect::full(9, 40));
        assert!(out.data.iter().all(|&v| v == 200));
    }
}
