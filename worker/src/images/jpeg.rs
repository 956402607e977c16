//! JPEG decoding with libjpeg-turbo's decoder (built from source by `mozjpeg-sys`; MozJPEG changes
//! only the encoder), the library PIL decodes with. Its accurate integer IDCT, "fancy" chroma
//! upsampling and colour conversion are reproduced by no Rust decoder: `jpeg-decoder` was up to 4
//! levels off PIL on generated photos and `zune-jpeg` up to 9, while this is bit-identical.
//!
//! Only the part of an image a transform reads needs decoding: rows above it are skipped
//! (entropy-decoded only), columns beside it are not inverse-transformed, and decoding stops below
//! it. libjpeg-turbo treats the edges of such a window as image edges when it upsamples chroma,
//! so the window is widened by a margin whose pixels are decoded but never used.

use super::{Rect, RgbImage, Window};
use anyhow::{anyhow, Result};
use mozjpeg_sys as ffi;
use std::marker::PhantomData;
use std::os::raw::c_int;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// Pixels decoded around a requested window so its own pixels see the same chroma neighbours as
/// in a full decode (an upsampled chroma sample spans 2 pixels; an iMCU is at most 32 wide).
const MARGIN: usize = 32;

/// A libjpeg error on its way from libjpeg's error handler to `catch_unwind` (libjpeg's default
/// handler would end the process).
struct LibjpegError(String);

/// libjpeg's message for the error or warning in `cinfo.err`.
unsafe fn message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    let mut buffer = [0u8; 80]; // JMSG_LENGTH_MAX
    let Some(format) = (*cinfo.err).format_message else {
        return format!("libjpeg error {}", (*cinfo.err).msg_code);
    };
    // The binding declares the buffer as a shared reference although libjpeg writes into it;
    // pass it as the pointer it is.
    let format: unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, *mut u8) =
        std::mem::transmute(format);
    format(cinfo, buffer.as_mut_ptr());
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

unsafe extern "C-unwind" fn error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    let text = message(cinfo);
    resume_unwind(Box::new(LibjpegError(text)));
}

/// Warnings are corrupt data libjpeg recovered from; PIL ignores them, except running out of data,
/// which PIL reports as a truncated file (libjpeg would pad the image with grey).
unsafe extern "C-unwind" fn emit_message(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    if level < 0 && (*cinfo.err).msg_code == ffi::JWRN_JPEG_EOF as c_int {
        resume_unwind(Box::new(LibjpegError(
            "the file is truncated (the JPEG data ends before the image does)".to_string(),
        )));
    }
}

/// One libjpeg decompressor, destroyed when dropped (also when an error unwinds through it).
/// Boxed: libjpeg keeps pointers to the error manager, and the struct must not move.
struct Decompressor {
    cinfo: ffi::jpeg_decompress_struct,
    err: ffi::jpeg_error_mgr,
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: created by jpeg_create_decompress; destroying is valid in any state.
        unsafe { ffi::jpeg_destroy_decompress(&mut self.cinfo) }
    }
}

/// Runs libjpeg calls, turning the errors its handler unwinds with into `Err`.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        match payload.downcast::<LibjpegError>() {
            Ok(e) => Err(anyhow!("JPEG decoding failed: {}", e.0)),
            Err(other) => resume_unwind(other),
        }
    })
}

/// A JPEG whose header has been read: its size is known, its pixels not decoded yet.
pub struct JpegReader<'a> {
    d: Box<Decompressor>,
    _bytes: PhantomData<&'a [u8]>,
}

impl<'a> JpegReader<'a> {
    /// Reads the header of the JPEG `bytes`.
    pub fn new(bytes: &'a [u8]) -> Result<JpegReader<'a>> {
        // SAFETY: `Decompressor` is plain C data for which all-zero is the state libjpeg expects
        // before jpeg_create_decompress; it is boxed before libjpeg sees its address; `bytes`
        // outlives the reader (the lifetime says so).
        let mut d: Box<Decompressor> = Box::new(unsafe { std::mem::zeroed() });
        unsafe {
            d.cinfo.common.err = ffi::jpeg_std_error(&mut d.err);
        }
        d.err.error_exit = Some(error_exit);
        d.err.emit_message = Some(emit_message);
        guarded(|| unsafe {
            ffi::jpeg_create_decompress(&mut d.cinfo);
            ffi::jpeg_mem_src(&mut d.cinfo, bytes.as_ptr(), bytes.len() as _);
            ffi::jpeg_read_header(&mut d.cinfo, 1);
            Ok(())
        })?;
        Ok(JpegReader {
            d,
            _bytes: PhantomData,
        })
    }

    /// `(width, height)` of the image.
    pub fn size(&self) -> (usize, usize) {
        (
            self.d.cinfo.image_width as usize,
            self.d.cinfo.image_height as usize,
        )
    }

    /// Decodes at least the pixels of `rect` to RGB (grayscale replicated, CMYK converted as PIL
    /// converts it), with the values a full decode gives them.
    pub fn decode(mut self, rect: Rect) -> Result<Window> {
        let (width, height) = self.size();
        assert!(rect.x + rect.width <= width && rect.y + rect.height <= height);
        // SAFETY: the calls follow libjpeg's order (header read, start, crop, skip, read); rows
        // handed to jpeg_read_scanlines have room for output_width * output_components bytes.
        guarded(|| unsafe { decode_started(&mut self.d.cinfo, rect) })
    }
}

/// Decodes `rect` and its margin of a JPEG whose header has been read.
unsafe fn decode_started(cinfo: &mut ffi::jpeg_decompress_struct, rect: Rect) -> Result<Window> {
    let width = cinfo.image_width as usize;
    let kind = match cinfo.jpeg_color_space {
        ffi::J_COLOR_SPACE::JCS_GRAYSCALE => ffi::J_COLOR_SPACE::JCS_GRAYSCALE,
        ffi::J_COLOR_SPACE::JCS_CMYK | ffi::J_COLOR_SPACE::JCS_YCCK => ffi::J_COLOR_SPACE::JCS_CMYK,
        _ => ffi::J_COLOR_SPACE::JCS_RGB,
    };
    cinfo.out_color_space = kind;
    ffi::jpeg_start_decompress(cinfo);

    // Columns: libjpeg moves the start left to an iMCU boundary and widens accordingly.
    let left = rect.x.saturating_sub(MARGIN);
    let right = (rect.x + rect.width + MARGIN).min(width);
    let (mut x0, mut columns) = (left as ffi::JDIMENSION, (right - left) as ffi::JDIMENSION);
    if columns as usize != width {
        ffi::jpeg_crop_scanline(cinfo, &mut x0, &mut columns);
    }
    let (x0, columns) = (x0 as usize, cinfo.output_width as usize);
    // Rows: skip to a margin above the window, stop after its last row.
    let top = rect.y.saturating_sub(MARGIN);
    if top > 0 {
        let skipped = ffi::jpeg_skip_scanlines(cinfo, top as ffi::JDIMENSION) as usize;
        if skipped != top {
            return Err(anyhow!(
                "the file is truncated (only {skipped} of {top} rows)"
            ));
        }
    }
    let bottom = rect.y + rect.height;
    let components = cinfo.output_components as usize;
    let stride = columns * components;
    let mut raw = vec![0u8; stride * (bottom - top)];
    while (cinfo.output_scanline as usize) < bottom {
        let row = cinfo.output_scanline as usize - top;
        let mut rows = [raw[row * stride..].as_mut_ptr()];
        if ffi::jpeg_read_scanlines(cinfo, rows.as_mut_ptr(), 1) != 1 {
            return Err(anyhow!("the file is truncated"));
        }
    }
    // The rows below are not needed: the reader's drop aborts the decompression.
    let data = match kind {
        ffi::J_COLOR_SPACE::JCS_RGB => raw,
        ffi::J_COLOR_SPACE::JCS_GRAYSCALE => raw.iter().flat_map(|&v| [v, v, v]).collect(),
        // libjpeg returns Adobe's inverted CMYK, which PIL reads as "CMYK;I".
        _ => raw
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]].map(|c| cmyk_to_rgb(255 - c, 255 - p[3])))
            .collect(),
    };
    Ok(Window {
        image: RgbImage {
            width: columns,
            height: bottom - top,
            data,
        },
        x: x0,
        y: top,
    })
}

/// PIL's CMYK to RGB: `(255 - k) - c * (255 - k) / 255` with its rounded division by 255.
fn cmyk_to_rgb(c: u8, k: u8) -> u8 {
    let nk = 255 - k as u32;
    let t = c as u32 * nk + 128;
    (nk - ((t + (t >> 8)) >> 8)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `pixels` (`components` per pixel: 1 gray, 3 RGB) with libjpeg-turbo's encoder:
    /// luma sampling factors `(h, v)` (2, 2 is 4:2:0), baseline or progressive, and a restart
    /// interval in MCU rows (0 for none).
    fn encode(
        width: usize,
        height: usize,
        components: usize,
        pixels: &[u8],
        sampling: (i32, i32),
        progressive: bool,
        restart_rows: u32,
    ) -> Vec<u8> {
        // SAFETY: the encoder's documented call order; rows are width * components bytes.
        unsafe {
            let mut err: ffi::jpeg_error_mgr = std::mem::zeroed();
            let mut c: ffi::jpeg_compress_struct = std::mem::zeroed();
            c.common.err = ffi::jpeg_std_error(&mut err);
            ffi::jpeg_create_compress(&mut c);
            let mut out: *mut u8 = std::ptr::null_mut();
            let mut len: std::os::raw::c_ulong = 0;
            ffi::jpeg_mem_dest(&mut c, &mut out, &mut len);
            c.image_width = width as u32;
            c.image_height = height as u32;
            c.input_components = components as i32;
            c.in_color_space = if components == 1 {
                ffi::J_COLOR_SPACE::JCS_GRAYSCALE
            } else {
                ffi::J_COLOR_SPACE::JCS_RGB
            };
            ffi::jpeg_c_set_int_param(
                &mut c,
                ffi::J_INT_PARAM::JINT_COMPRESS_PROFILE,
                ffi::JCP_FASTEST as i32,
            );
            ffi::jpeg_set_defaults(&mut c);
            ffi::jpeg_set_quality(&mut c, 85, 1);
            if components == 3 {
                (*c.comp_info).h_samp_factor = sampling.0;
                (*c.comp_info).v_samp_factor = sampling.1;
            }
            if progressive {
                ffi::jpeg_simple_progression(&mut c);
            }
            c.restart_in_rows = restart_rows as i32;
            ffi::jpeg_start_compress(&mut c, 1);
            for row in pixels.chunks_exact(width * components) {
                let rows = [row.as_ptr()];
                ffi::jpeg_write_scanlines(&mut c, rows.as_ptr(), 1);
            }
            ffi::jpeg_finish_compress(&mut c);
            ffi::jpeg_destroy_compress(&mut c);
            let bytes = std::slice::from_raw_parts(out, len as usize).to_vec();
            libc::free(out as *mut libc::c_void);
            bytes
        }
    }

    /// Smooth colour gradients with noise: chroma that upsampling has to interpolate.
    fn photo(width: usize, height: usize, components: usize, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 41) as f64 - 20.0
        };
        let mut out = Vec::with_capacity(width * height * components);
        for y in 0..height {
            for x in 0..width {
                let (fx, fy) = (x as f64, y as f64);
                let rgb = [
                    128.0 + 100.0 * (fx / 13.0).sin() * (fy / 29.0).cos(),
                    255.0 * fx / width as f64,
                    if (x / 23 + y / 19) % 2 == 0 {
                        210.0
                    } else {
                        40.0
                    },
                ];
                for value in rgb.iter().take(components) {
                    out.push((value + noise()).clamp(0.0, 255.0) as u8);
                }
            }
        }
        out
    }

    /// A decoded window holds exactly the pixels of a full decode at the same place, for windows
    /// anywhere (edges included), in every subsampling, progressive or with restart markers.
    #[test]
    fn a_window_has_the_pixels_of_the_full_decode() {
        let cases = [
            (501, 375, 3, (2, 2), false, 0),
            (377, 290, 3, (2, 1), true, 0),
            (250, 333, 3, (1, 2), false, 2),
            (301, 199, 3, (1, 1), false, 0),
            (260, 181, 1, (1, 1), true, 0),
        ];
        for (k, &(w, h, components, sampling, progressive, restart)) in cases.iter().enumerate() {
            let bytes = encode(
                w,
                h,
                components,
                &photo(w, h, components, k as u64),
                sampling,
                progressive,
                restart,
            );
            let full = JpegReader::new(&bytes)
                .unwrap()
                .decode(Rect::full(w, h))
                .unwrap();
            assert_eq!(
                (full.x, full.y, full.image.width, full.image.height),
                (0, 0, w, h)
            );
            let windows = [
                (0, 0, 1, 1),
                (w - 1, h - 1, 1, 1),
                (17, 33, 100, 90),
                (w / 2 + 3, 5, w / 2 - 3, h - 5),
                (64, 64, 64, 64),
                (1, h / 3, w - 2, 7),
                (w - 40, 0, 40, h),
            ];
            for (x, y, width, height) in windows {
                let rect = Rect {
                    x,
                    y,
                    width,
                    height,
                };
                let window = JpegReader::new(&bytes).unwrap().decode(rect).unwrap();
                assert!(
                    window.x <= x
                        && window.y <= y
                        && window.x + window.image.width >= x + width
                        && window.y + window.image.height >= y + height,
                    "case {k}: window {rect:?} not covered"
                );
                assert_eq!(
                    window.crop(rect),
                    full.image.crop(rect),
                    "case {k}: window {rect:?}"
                );
            }
        }
    }

    #[test]
    fn corrupt_and_truncated_files_are_errors_not_crashes() {
        let bytes = encode(64, 48, 3, &photo(64, 48, 3, 9), (2, 2), false, 0);
        for cut in [3, 20, bytes.len() / 2, bytes.len() - 10] {
            let result = JpegReader::new(&bytes[..cut]).and_then(|r| r.decode(Rect::full(64, 48)));
            let e = result.unwrap_err().to_string();
            assert!(e.contains("JPEG") || e.contains("truncated"), "{cut}: {e}");
        }
        // Garbage after the header: libjpeg's error comes back as an error.
        let mut broken = bytes.clone();
        let header_end = broken.len() / 4;
        for b in &mut broken[header_end..] {
            *b = 0xFF;
        }
        assert!(JpegReader::new(&broken)
            .and_then(|r| r.decode(Rect::full(64, 48)))
            .is_err());
    }
}
