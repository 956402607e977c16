//! How a trunk wants its image input: channel order, value range and per-channel normalisation.
//!
//! Each trunk declares its convention and the image pipeline produces tensors in it, so a dataset
//! never needs to know which network consumes it. torchvision's networks take RGB in `[0, 1]`
//! normalised with the ImageNet statistics; the BN-Inception of `pretrainedmodels` (the trunk of "A
//! Metric Learning Reality Check") takes BGR in `[0, 255]` with its own mean and unit deviation,
//! which is what the original tool's transforms for it (convert to BGR, ToTensor, multiply by 255,
//! normalise) produce.

/// One image-input convention: `value = (pixel / 255 * scale - mean[c]) / std[c]`, with the channels
/// in BGR order when `bgr` is set (mean and std are given in the tensor's channel order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputConvention {
    /// Name shown in messages and docs.
    pub name: &'static str,
    /// Channels in BGR order instead of RGB.
    pub bgr: bool,
    /// Multiplier applied to pixels in `[0, 1]` before normalising (1 or 255).
    pub scale: f32,
    /// Per-channel mean, in the tensor's channel order and on the scaled range.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in the tensor's channel order and on the scaled range.
    pub std: [f32; 3],
}

impl InputConvention {
    /// torchvision's models: RGB in `[0, 1]`, ImageNet mean and standard deviation.
    pub const IMAGENET: InputConvention = InputConvention {
        name: "imagenet",
        bgr: false,
        scale: 1.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// pretrainedmodels' BN-Inception: BGR in `[0, 255]`, mean (104, 117, 128), unit deviation.
    pub const BN_INCEPTION: InputConvention = InputConvention {
        name: "bninception",
        bgr: true,
        scale: 255.0,
        mean: [104.0, 117.0, 128.0],
        std: [1.0, 1.0, 1.0],
    };
}

impl Default for InputConvention {
    fn default() -> Self {
        InputConvention::IMAGENET
    }
}
