//! ToTensor and normalisation in a trunk's input convention, with torchvision's float32 operations
//! in its order (`pixel / 255`, then `* scale` for the x255 conventions, then `(x - mean) / std`),
//! so values are bit-identical to the original's.

use super::RgbImage;
use crate::input_convention::InputConvention;

/// Writes `image` as `[3, height, width]` floats (channel-major) into `out`.
pub fn write_chw(image: &RgbImage, convention: &InputConvention, out: &mut [f32]) {
    let plane = image.width * image.height;
    assert_eq!(out.len(), plane * 3, "output buffer of the wrong size");
    for (c, dst) in out.chunks_exact_mut(plane).enumerate() {
        let source_channel = if convention.bgr { 2 - c } else { c };
        let (mean, std) = (convention.mean[c], convention.std[c]);
        let pixels = image.data[source_channel..].iter().step_by(3);
        if convention.scale == 1.0 {
            for (d, &p) in dst.iter_mut().zip(pixels) {
                *d = (p as f32 / 255.0 - mean) / std;
            }
        } else {
            for (d, &p) in dst.iter_mut().zip(pixels) {
                *d = (p as f32 / 255.0 * convention.scale - mean) / std;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgr_conventions_swap_channels_and_scale() {
        let img = RgbImage {
            width: 2,
            height: 1,
            data: vec![255, 0, 51, 0, 255, 102],
        };
        let mut out = vec![0.0; 6];
        write_chw(&img, &InputConvention::BN_INCEPTION, &mut out);
        // Channel 0 is blue: 51 and 102, minus 104.
        assert_eq!(out[0], 51.0 / 255.0 * 255.0 - 104.0);
        assert_eq!(out[1], 102.0 / 255.0 * 255.0 - 104.0);
        assert_eq!(out[4], 255.0 / 255.0 * 255.0 - 128.0);
        write_chw(&img, &InputConvention::IMAGENET, &mut out);
        assert_eq!(out[0], (1.0 - 0.485) / 0.229);
        assert_eq!(out[2], (0.0 - 0.456) / 0.224);
    }
}
