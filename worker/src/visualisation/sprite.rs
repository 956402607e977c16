//! The Projector's sprite: one thumbnail per projected sample in a square atlas, row by row in
//! the order of the metadata file (`metricbench_protocol::projector` names it in the config).

use super::pictures::{canvas, encode_png, thumbnails};
use crate::datasets::Dataset;
use crate::images::paste;
use anyhow::Result;
use metricbench_protocol::projector::{sprite_columns, MAX_SPRITE_SIDE};

/// Thumbnail side when the atlas has room (the Projector shows thumbnails at about this size).
const THUMBNAIL: usize = 64;

/// The encoded sprite of `samples` and its thumbnail side, `None` when the dataset has no images.
pub fn sprite(dataset: &dyn Dataset, samples: &[usize]) -> Result<Option<(Vec<u8>, u32)>> {
    let n = samples.len();
    if n == 0 {
        return Ok(None);
    }
    let columns = sprite_columns(n);
    let side = (MAX_SPRITE_SIDE as usize / columns).clamp(1, THUMBNAIL);
    let Some(tiles) = thumbnails(dataset, samples, side) else {
        return Ok(None);
    };
    let mut atlas = canvas(columns * side, n.div_ceil(columns) * side);
    for (i, t) in tiles.iter().enumerate() {
        paste(&mut atlas, t, (i % columns) * side, (i / columns) * side);
    }
    Ok(Some((encode_png(&atlas)?, side as u32)))
}
