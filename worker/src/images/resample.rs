//! Bilinear resampling with PIL's arithmetic (`Image.resize(size, Image.BILINEAR)`), which is what
//! torchvision's `Resize` and `RandomResizedCrop` run on PIL images: a triangle filter widened by the
//! downscaling factor (antialiasing), weights quantised to 22-bit fixed point, one pass per axis,
//! each rounded to 8 bits. Reproducing it step by step gives PIL's pixels exactly, where a generic
//! resizer differs by several levels.
//!
//! The order of the two passes changes the rounding in between, so it follows Pillow's: since
//! Pillow 13 the vertical pass runs first when the height shrinks by more than twice as many pixels
//! as the width (`(h_in - h_out) > 2 * (w_in - w_out)`, with `h_out < h_in`); Pillow 12 and older
//! always ran the horizontal pass first, which differs by a level in some pixels of such resizes
//! (the default train crop meets them; the eval resize of landscape and portrait photos does not).
//!
//! Only a region of the output may be asked for: a resize followed by a crop then computes just
//! the cropped pixels, with the same values as resizing everything and cropping afterwards.

use super::{Rect, RgbImage, Window};

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

/// `(first, end)` of the input indices that the outputs of `c` read.
fn span(c: &Coefficients) -> (usize, usize) {
    let first = c.bounds.iter().map(|b| b.0).min().unwrap_or(0);
    let end = c.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(0);
    (first, end.max(first))
}

/// The input indices `first..end` read by outputs `first_out..first_out + count` of a resize of
/// `in_size` to `out_size` (the same indices when nothing is resized).
fn input_span(in_size: usize, out_size: usize, first_out: usize, count: usize) -> (usize, usize) {
    if in_size == out_size {
        return (first_out, first_out + count);
    }
    span(&coefficients(in_size, out_size, first_out, count))
}

/// The source pixels (in the source image's coordinates) that `resize` with these arguments
/// reads: what a decoder must provide.
pub fn source_needed(src_rect: Rect, out_width: usize, out_height: usize, region: Rect) -> Rect {
    let (x0, x1) = input_span(src_rect.width, out_width, region.x, region.width);
    let (y0, y1) = input_span(src_rect.height, out_height, region.y, region.height);
    Rect {
        x: src_rect.x + x0,
        y: src_rect.y + y0,
        width: x1 - x0,
        height: y1 - y0,
    }
}

/// Whether Pillow (13 and later) runs the vertical pass first for this resize.
fn vertical_first(in_width: usize, in_height: usize, out_width: usize, out_height: usize) -> bool {
    let shrink_y = in_height as i64 - out_height as i64;
    let shrink_x = in_width as i64 - out_width as i64;
    shrink_y > 0 && shrink_y > 2 * shrink_x
}

/// Rows of pixels read by a pass: row `y` is `width` pixels from byte `offset + y * stride` on.
#[derive(Clone, Copy)]
struct Plane<'a> {
    data: &'a [u8],
    offset: usize,
    stride: usize,
    width: usize,
}

impl<'a> Plane<'a> {
    /// The part of a window from source column `x`, row `y` on, `width` pixels wide.
    fn of_window(window: &'a Window, x: usize, y: usize, width: usize) -> Plane<'a> {
        let image = &window.image;
        Plane {
            data: &image.data,
            offset: ((y - window.y) * image.width + (x - window.x)) * 3,
            stride: image.width * 3,
            width,
        }
    }

    fn of_image(image: &'a RgbImage) -> Plane<'a> {
        Plane {
            data: &image.data,
            offset: 0,
            stride: image.width * 3,
            width: image.width,
        }
    }

    #[inline]
    fn row(&self, y: usize) -> &'a [u8] {
        let start = self.offset + y * self.stride;
        &self.data[start..start + self.width * 3]
    }
}

/// Resizes the part `src_rect` of the source image (as if it had been cropped out first) to
/// `out_width` x `out_height`, and returns the pixels of `region` of that output. `src` must hold
/// at least `source_needed(src_rect, out_width, out_height, region)`.
pub fn resize(
    src: &Window,
    src_rect: Rect,
    out_width: usize,
    out_height: usize,
    region: Rect,
) -> RgbImage {
    debug_assert!(region.x + region.width <= out_width && region.y + region.height <= out_height);
    let horizontal = (out_width != src_rect.width)
        .then(|| coefficients(src_rect.width, out_width, region.x, region.width));
    let vertical = (out_height != src_rect.height)
        .then(|| coefficients(src_rect.height, out_height, region.y, region.height));
    // The source columns and rows read, relative to src_rect.
    let (x0, x1) = horizontal
        .as_ref()
        .map_or((region.x, region.x + region.width), span);
    let (y0, y1) = vertical
        .as_ref()
        .map_or((region.y, region.y + region.height), span);
    let source = Plane::of_window(src, src_rect.x + x0, src_rect.y + y0, x1 - x0);
    match (&horizontal, &vertical) {
        (None, None) => src.crop(Rect {
            x: src_rect.x + region.x,
            y: src_rect.y + region.y,
            width: region.width,
            height: region.height,
        }),
        (Some(h), None) => horizontal_pass(source, y1 - y0, h, x0),
        (None, Some(v)) => vertical_pass(source, v, y0),
        (Some(h), Some(v)) => {
            if vertical_first(src_rect.width, src_rect.height, out_width, out_height) {
                let tmp = vertical_pass(source, v, y0);
                horizontal_pass(Plane::of_image(&tmp), tmp.height, h, x0)
            } else {
                let tmp = horizontal_pass(source, y1 - y0, h, x0);
                vertical_pass(Plane::of_image(&tmp), v, y0)
            }
        }
    }
}

/// The horizontal pass over `rows` rows of `plane`, whose column 0 is input index `shift` of `h`.
fn horizontal_pass(plane: Plane, rows: usize, h: &Coefficients, shift: usize) -> RgbImage {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { horizontal_pass_avx2(plane, rows, h, shift) };
    }
    horizontal_pass_portable(plane, rows, h, shift)
}

/// The horizontal pass compiled for AVX2 (see `vertical_pass_avx2`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn horizontal_pass_avx2(
    plane: Plane,
    rows: usize,
    h: &Coefficients,
    shift: usize,
) -> RgbImage {
    horizontal_pass_portable(plane, rows, h, shift)
}

#[inline(always)]
fn horizontal_pass_portable(plane: Plane, rows: usize, h: &Coefficients, shift: usize) -> RgbImage {
    let taps = h.bounds.iter().map(|b| b.1).max().unwrap_or(0);
    // A fixed number of taps per output lets the compiler unroll the dot products and drop the
    // bounds checks; it covers every resize up to a 4x reduction.
    match taps {
        0..=2 => horizontal_fixed::<2>(plane, rows, h, shift),
        3 => horizontal_fixed::<3>(plane, rows, h, shift),
        4 => horizontal_fixed::<4>(plane, rows, h, shift),
        5 => horizontal_fixed::<5>(plane, rows, h, shift),
        6 => horizontal_fixed::<6>(plane, rows, h, shift),
        7 => horizontal_fixed::<7>(plane, rows, h, shift),
        8 => horizontal_fixed::<8>(plane, rows, h, shift),
        _ => horizontal_any(plane, rows, h, shift),
    }
}

/// The horizontal pass with every output reading exactly `K` consecutive input pixels: its own
/// taps, then zero weights (which add nothing to PIL's sums). Near the right edge the `K` pixels
/// start further left, with the weights moved right, so they stay inside the row.
#[inline(always)]
fn horizontal_fixed<const K: usize>(
    plane: Plane,
    rows: usize,
    h: &Coefficients,
    shift: usize,
) -> RgbImage {
    if plane.width < K {
        return horizontal_any(plane, rows, h, shift);
    }
    let kernels: Vec<(usize, [i32; K])> = h
        .bounds
        .iter()
        .enumerate()
        .map(|(o, &(xmin, n))| {
            let first = xmin - shift;
            let start = first.min(plane.width - K);
            let mut weights = [0i32; K];
            weights[first - start..first - start + n]
                .copy_from_slice(&h.weights[o * h.ksize..o * h.ksize + n]);
            (start, weights)
        })
        .collect();
    let width = kernels.len();
    let mut out = RgbImage::new(width, rows);
    if width == 0 {
        return out;
    }
    for (y, out_row) in out.data.chunks_exact_mut(width * 3).enumerate() {
        let src_row = plane.row(y);
        for (out, (start, weights)) in out_row.chunks_exact_mut(3).zip(&kernels) {
            let pixels = &src_row[start * 3..start * 3 + 3 * K];
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for (i, &w) in weights.iter().enumerate() {
                acc[0] += pixels[3 * i] as i32 * w;
                acc[1] += pixels[3 * i + 1] as i32 * w;
                acc[2] += pixels[3 * i + 2] as i32 * w;
            }
            out[0] = clip8(acc[0]);
            out[1] = clip8(acc[1]);
            out[2] = clip8(acc[2]);
        }
    }
    out
}

/// The horizontal pass for any number of taps.
fn horizontal_any(plane: Plane, rows: usize, h: &Coefficients, shift: usize) -> RgbImage {
    let width = h.bounds.len();
    let mut out = RgbImage::new(width, rows);
    if width == 0 {
        return out;
    }
    for (y, out_row) in out.data.chunks_exact_mut(width * 3).enumerate() {
        let src_row = plane.row(y);
        for (o, out) in out_row.chunks_exact_mut(3).enumerate() {
            let (xmin, n) = h.bounds[o];
            let k = &h.weights[o * h.ksize..o * h.ksize + n];
            let first = xmin - shift;
            let taps = &src_row[first * 3..(first + n) * 3];
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for (p, &w) in taps.chunks_exact(3).zip(k) {
                acc[0] += p[0] as i32 * w;
                acc[1] += p[1] as i32 * w;
                acc[2] += p[2] as i32 * w;
            }
            out[0] = clip8(acc[0]);
            out[1] = clip8(acc[1]);
            out[2] = clip8(acc[2]);
        }
    }
    out
}

/// The vertical pass over `plane`, whose row 0 is input index `shift` of `v`.
fn vertical_pass(plane: Plane, v: &Coefficients, shift: usize) -> RgbImage {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { vertical_pass_avx2(plane, v, shift) };
    }
    vertical_pass_portable(plane, v, shift)
}

/// The vertical pass compiled for AVX2, whose 8-lane 32-bit multiplies the compiler uses for the
/// per-tap multiply-adds (the x86-64 baseline has no vector 32-bit multiply): 4x fewer
/// instructions. The arithmetic, and so every value, is the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vertical_pass_avx2(plane: Plane, v: &Coefficients, shift: usize) -> RgbImage {
    vertical_pass_portable(plane, v, shift)
}

#[inline(always)]
fn vertical_pass_portable(plane: Plane, v: &Coefficients, shift: usize) -> RgbImage {
    let width3 = plane.width * 3;
    let mut out = RgbImage::new(plane.width, v.bounds.len());
    if width3 == 0 {
        return out;
    }
    let mut acc = vec![0i32; width3];
    for (o, out_row) in out.data.chunks_exact_mut(width3).enumerate() {
        let (ymin, n) = v.bounds[o];
        let k = &v.weights[o * v.ksize..o * v.ksize + n];
        acc.fill(1 << (PRECISION_BITS - 1));
        for (i, &w) in k.iter().enumerate() {
            for (a, &p) in acc.iter_mut().zip(plane.row(ymin + i - shift)) {
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
        let img = Window::whole(gradient(50, 37));
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
        let img = Window::whole(gradient(40, 30));
        let rect = Rect {
            x: 7,
            y: 5,
            width: 21,
            height: 19,
        };
        let cropped = Window::whole(img.crop(rect));
        assert_eq!(
            resize(&img, rect, 11, 13, Rect::full(11, 13)),
            resize(&cropped, Rect::full(21, 19), 11, 13, Rect::full(11, 13))
        );
    }

    #[test]
    fn constant_images_stay_constant() {
        let mut img = RgbImage::new(31, 17);
        img.data.fill(200);
        let out = resize(
            &Window::whole(img),
            Rect::full(31, 17),
            9,
            40,
            Rect::full(9, 40),
        );
        assert!(out.data.iter().all(|&v| v == 200));
    }

    /// A window holding just the pixels `source_needed` names gives the same output as the whole
    /// image: downscaling, upscaling, one axis, and no resize at all.
    #[test]
    fn the_needed_source_window_is_enough() {
        let img = gradient(120, 90);
        let src_rect = Rect {
            x: 11,
            y: 7,
            width: 97,
            height: 71,
        };
        let region = Rect {
            x: 9,
            y: 5,
            width: 20,
            height: 13,
        };
        for (w, h) in [(45, 33), (200, 150), (45, 71), (97, 30), (97, 71), (90, 20)] {
            let whole = resize(&Window::whole(img.clone()), src_rect, w, h, region);
            let needed = source_needed(src_rect, w, h, region);
            // Pad by nothing: the window is exactly what was declared needed.
            let window = Window {
                image: img.crop(needed),
                x: needed.x,
                y: needed.y,
            };
            assert_eq!(resize(&window, src_rect, w, h, region), whole, "{w}x{h}");
            let full = resize(
                &Window::whole(img.clone()),
                src_rect,
                w,
                h,
                Rect::full(w, h),
            );
            assert_eq!(
                whole,
                full.crop(region),
                "{w}x{h}: region of the full resize"
            );
            assert!(
                needed.x >= src_rect.x && needed.x + needed.width <= src_rect.x + src_rect.width
            );
        }
    }

    /// Pillow 13's rule: vertical first only when the height shrinks by more than twice the
    /// width's shrinkage (a random crop of 228x271 resized to 227x227, not the eval resize of a
    /// 500x375 or 375x500 photo to a shorter edge of 256, never when the height grows).
    #[test]
    fn the_pass_order_follows_pillow() {
        assert!(vertical_first(228, 271, 227, 227));
        assert!(!vertical_first(500, 375, 341, 256));
        assert!(!vertical_first(375, 500, 256, 341));
        assert!(!vertical_first(100, 50, 300, 60));
        assert!(!vertical_first(100, 80, 90, 60)); // 20 == 2 * 10: not more than twice
        assert!(vertical_first(100, 80, 91, 60));
        assert!(vertical_first(100, 80, 300, 60)); // the width growing counts as negative
    }
}
