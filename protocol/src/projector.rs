//! Embeddings for TensorBoard's Projector: per split a tensor file (tab-separated floats, one row
//! per sample), a metadata file (a header row, then the label and the sample's index in the
//! dataset), for image datasets a sprite (one PNG atlas of equally sized thumbnails, row by row in
//! the metadata's order), and the `projector_config.pbtxt` that names them. Written into a run's
//! TensorBoard folder (beside its event file), which is where the Projector looks for its config.

use crate::fsutil::write_atomic;
use anyhow::{bail, Result};
use std::fmt::Write as _;
use std::path::Path;

/// One split's sample of embeddings.
pub struct ProjectedSplit<'a> {
    pub split: &'a str,
    /// Row-major `labels.len() x dim`.
    pub embeddings: &'a [f32],
    pub dim: usize,
    pub labels: &'a [i64],
    /// The samples' indices in the dataset.
    pub indices: &'a [usize],
    /// Thumbnails of the samples, for datasets of images.
    pub sprite: Option<Sprite<'a>>,
}

/// A sprite: an encoded PNG holding one `thumbnail_width x thumbnail_height` thumbnail per sample,
/// left to right and top to bottom, `ceil(sqrt(n))` per row, as the Projector slices it.
pub struct Sprite<'a> {
    pub png: &'a [u8],
    pub thumbnail_width: u32,
    pub thumbnail_height: u32,
}

/// The Projector refuses sprites larger than this in either direction.
pub const MAX_SPRITE_SIDE: u32 = 8192;

/// Thumbnails per row (and at most per column) of the sprite of `n` samples.
pub fn sprite_columns(n: usize) -> usize {
    let mut c = (n as f64).sqrt().ceil() as usize;
    // Guard against floating-point rounding either way.
    while c * c < n {
        c += 1;
    }
    while c > 0 && (c - 1) * (c - 1) >= n {
        c -= 1;
    }
    c
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

/// Checks that the sprite holds `n` thumbnails of its declared size and fits the Projector.
fn check_sprite(split: &str, n: usize, sprite: &Sprite) -> Result<()> {
    let Some((w, h)) = png_size(sprite.png) else {
        bail!("sprite of split {split}: not a PNG image");
    };
    let columns = sprite_columns(n) as u64;
    let rows = (n as u64).div_ceil(columns.max(1));
    let (tw, th) = (
        u64::from(sprite.thumbnail_width),
        u64::from(sprite.thumbnail_height),
    );
    if tw == 0 || th == 0 || u64::from(w) < columns * tw || u64::from(h) < rows * th {
        bail!(
            "sprite of split {split}: a {w}x{h} image cannot hold {n} thumbnails of \
             {tw}x{th} ({columns} per row)"
        );
    }
    if w > MAX_SPRITE_SIDE || h > MAX_SPRITE_SIDE {
        bail!(
            "sprite of split {split}: {w}x{h} exceeds the Projector's limit of \
             {MAX_SPRITE_SIDE} pixels per side"
        );
    }
    Ok(())
}

/// Writes `<split>_embeddings.tsv`, `<split>_metadata.tsv` and `projector_config.pbtxt` into
/// `folder` (paths in the config are relative to it, as the Projector resolves them).
pub fn write(folder: &Path, splits: &[ProjectedSplit]) -> Result<()> {
    let mut config = String::new();
    for s in splits {
        let n = s.labels.len();
        if s.dim == 0 || s.embeddings.len() != n * s.dim || s.indices.len() != n {
            bail!(
                "projector data of split {}: {} values for {n} labels, {} indices and dimension {}",
                s.split,
                s.embeddings.len(),
                s.indices.len(),
                s.dim
            );
        }
        if n == 0 {
            continue;
        }
        if let Some(sprite) = &s.sprite {
            check_sprite(s.split, n, sprite)?;
        }
        let mut tensor = String::with_capacity(n * s.dim * 10);
        for row in s.embeddings.chunks(s.dim) {
            for (j, v) in row.iter().enumerate() {
                if j > 0 {
                    tensor.push('\t');
                }
                // Shortest round-trip representation; NaN as the Projector's parser expects.
                let _ = write!(tensor, "{v}");
            }
            tensor.push('\n');
        }
        let mut metadata = String::from("label\tindex\n");
        for (l, i) in s.labels.iter().zip(s.indices) {
            let _ = writeln!(metadata, "{l}\t{i}");
        }
        let tensor_file = format!("{}_embeddings.tsv", s.split);
        let metadata_file = format!("{}_metadata.tsv", s.split);
        write_atomic(&folder.join(&tensor_file), tensor.as_bytes())?;
        write_atomic(&folder.join(&metadata_file), metadata.as_bytes())?;
        let _ = write!(
            config,
            "embeddings {{\n  tensor_name: \"{}\"\n  tensor_shape: {n}\n  tensor_shape: {}\n  \
             tensor_path: \"{tensor_file}\"\n  metadata_path: \"{metadata_file}\"\n",
            s.split, s.dim
        );
        if let Some(sprite) = &s.sprite {
            let sprite_file = format!("{}_sprite.png", s.split);
            write_atomic(&folder.join(&sprite_file), sprite.png)?;
            // single_image_dim is [width, height].
            let _ = write!(
                config,
                "  sprite {{\n    image_path: \"{sprite_file}\"\n    single_image_dim: {}\n    \
                 single_image_dim: {}\n  }}\n",
                sprite.thumbnail_width, sprite.thumbnail_height
            );
        }
        config.push_str("}\n");
    }
    write_atomic(&folder.join("projector_config.pbtxt"), config.as_bytes())
}

/// `n` of `0..len` spread evenly (every class of a sorted split is represented), in order.
pub fn sample_indices(len: usize, n: usize) -> Vec<usize> {
    if n >= len {
        return (0..len).collect();
    }
    (0..n).map(|i| i * len / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_config_name_each_split() {
        let dir = tempfile::tempdir().unwrap();
        let e = [0.5f32, -1.0, 0.25, 2.0];
        write(
            dir.path(),
            &[ProjectedSplit {
                split: "val",
                embeddings: &e,
                dim: 2,
                labels: &[3, 7],
                indices: &[10, 20],
                sprite: None,
            }],
        )
        .unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("val_embeddings.tsv"), "0.5\t-1\n0.25\t2\n");
        assert_eq!(read("val_metadata.tsv"), "label\tindex\n3\t10\n7\t20\n");
        let config = read("projector_config.pbtxt");
        assert!(config.contains("tensor_name: \"val\""), "{config}");
        assert!(config.contains("tensor_path: \"val_embeddings.tsv\""));
        assert!(config.contains("tensor_shape: 2\n  tensor_shape: 2"));
    }

    #[test]
    fn mismatched_sizes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = [0.5f32, -1.0, 0.25];
        let err = write(
            dir.path(),
            &[ProjectedSplit {
                split: "val",
                embeddings: &e,
                dim: 2,
                labels: &[3, 7],
                indices: &[10, 20],
                sprite: None,
            }],
        )
        .unwrap_err();
        assert!(err.to_string().contains("split val"), "{err}");
    }

    /// The first bytes of a PNG of the given size (all the sprite check reads).
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&width.to_be_bytes());
        png.extend_from_slice(&height.to_be_bytes());
        png.extend_from_slice(&[8, 2, 0, 0, 0]);
        png
    }

    #[test]
    fn a_sprite_is_written_and_named_with_its_thumbnail_size() {
        let dir = tempfile::tempdir().unwrap();
        let e = [0.0f32; 5];
        let png = png_header(30, 20);
        let split = |png: &'static [u8], w: u32| ProjectedSplit {
            split: "test",
            embeddings: &e,
            dim: 1,
            labels: &[1, 1, 2, 2, 3],
            indices: &[0, 1, 2, 3, 4],
            sprite: Some(Sprite {
                png,
                thumbnail_width: w,
                thumbnail_height: 10,
            }),
        };
        let png: &'static [u8] = Box::leak(png.into_boxed_slice());
        // 5 thumbnails: 3 per row, 2 rows of 10x10 fit into 30x20.
        write(dir.path(), &[split(png, 10)]).unwrap();
        let config = std::fs::read_to_string(dir.path().join("projector_config.pbtxt")).unwrap();
        assert!(
            config.contains(
                "  sprite {\n    image_path: \"test_sprite.png\"\n    single_image_dim: 10\n    \
                 single_image_dim: 10\n  }\n}\n"
            ),
            "{config}"
        );
        assert_eq!(
            std::fs::read(dir.path().join("test_sprite.png")).unwrap(),
            png
        );
        // 11 pixels wide thumbnails do not fit 3 to a row.
        let err = write(dir.path(), &[split(png, 11)]).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot hold 5 thumbnails of 11x10"),
            "{err}"
        );
        let err = write(dir.path(), &[split(b"GIF89a", 10)]).unwrap_err();
        assert!(err.to_string().contains("not a PNG"), "{err}");
    }

    #[test]
    fn sprite_columns_are_the_ceiling_of_the_square_root() {
        let got: Vec<usize> = [1, 2, 4, 5, 9, 10, 500]
            .iter()
            .map(|&n| sprite_columns(n))
            .collect();
        assert_eq!(got, vec![1, 2, 2, 3, 3, 4, 23]);
    }

    #[test]
    fn samples_are_spread_over_the_split() {
        assert_eq!(sample_indices(10, 3), vec![0, 3, 6]);
        assert_eq!(sample_indices(2, 5), vec![0, 1]);
    }
}
