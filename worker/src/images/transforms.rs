//! The configured transforms (`transforms: {train: {...}, eval: {...}}`, key order = pipeline
//! order) with torchvision's semantics on PIL images: output sizes, crop boxes, the
//! RandomResizedCrop sampling (ten tries, then its central fallback) and rounding (Python's
//! `round`, half to even) are reproduced exactly.
//!
//! A resize is kept pending until its pixels are needed, so a crop that follows it only computes
//! the cropped part (same values, less work: the default train pipeline resizes to 341x256 and
//! then keeps a random fraction of it).

use super::resample::{resize, source_needed};
use super::{Rect, RgbImage, Window};
use crate::errors::config_error;
use crate::spec::Spec;
use anyhow::Result;
use serde_json::Value;

/// Transform names accepted in the config.
pub const TRANSFORMS: [&str; 4] = [
    "Resize",
    "RandomResizedCrop",
    "RandomHorizontalFlip",
    "CenterCrop",
];

/// The target of a `Resize`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResizeTarget {
    /// The shorter edge becomes this long, the longer one keeps the aspect ratio (truncated).
    ShorterEdge(usize),
    /// Exactly this height and width.
    Exact { height: usize, width: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    Resize(ResizeTarget),
    CenterCrop {
        height: usize,
        width: usize,
    },
    RandomResizedCrop {
        height: usize,
        width: usize,
        scale: (f64, f64),
        ratio: (f64, f64),
    },
    RandomHorizontalFlip {
        p: f64,
    },
}

/// The random numbers the transforms consume, in torch's forms: float32 uniforms and integers.
/// Training draws them from a seeded generator; tests feed torchvision's recorded draws.
pub trait CropDraws {
    /// A float32 uniform in `[lo, hi)` (`torch.empty(1).uniform_(lo, hi)`).
    fn uniform(&mut self, lo: f32, hi: f32) -> f32;
    /// An integer in `0..n` (`torch.randint(0, n, (1,))`).
    fn below(&mut self, n: usize) -> usize;
}

/// Python's `int(round(x))`: halves go to the even neighbour.
fn round_half_even(x: f64) -> i64 {
    x.round_ties_even() as i64
}

impl Transform {
    fn parse(path: &str, name: &str, kwargs: &Value) -> Result<Transform> {
        let mut spec = Spec::parse(path, &serde_json::json!({ name: kwargs }))?;
        let transform = match name {
            "Resize" => {
                let size = required_size(&mut spec, "size", "int or [height, width]")?;
                Transform::Resize(match size[..] {
                    [n] => ResizeTarget::ShorterEdge(n),
                    [height, width] => ResizeTarget::Exact { height, width },
                    _ => unreachable!("sizes have one or two items"),
                })
            }
            "CenterCrop" => {
                let (height, width) =
                    square_or_pair(&required_size(&mut spec, "size", "int or [height, width]")?);
                Transform::CenterCrop { height, width }
            }
            "RandomResizedCrop" => {
                let (height, width) =
                    square_or_pair(&required_size(&mut spec, "size", "int or [height, width]")?);
                let scale = range(&mut spec, "scale", "[0.08, 1.0]", (0.08, 1.0))?;
                let ratio = range(&mut spec, "ratio", "[0.75, 1.3333]", (0.75, 4.0 / 3.0))?;
                if scale.0 <= 0.0 || ratio.0 <= 0.0 {
                    return Err(config_error(format!(
                        "`{path}/RandomResizedCrop`: scale and ratio must be positive, got \
                         scale {scale:?}, ratio {ratio:?}"
                    )));
                }
                Transform::RandomResizedCrop {
                    height,
                    width,
                    scale,
                    ratio,
                }
            }
            "RandomHorizontalFlip" => {
                let p = match spec.numbers("p", "float", "0.5")?.as_deref() {
                    None => 0.5,
                    Some(&[p]) if (0.0..=1.0).contains(&p) => p,
                    Some(other) => {
                        return Err(config_error(format!(
                            "`{path}/RandomHorizontalFlip/p` must be one probability in [0, 1], \
                             got {other:?}"
                        )))
                    }
                };
                Transform::RandomHorizontalFlip { p }
            }
            other => {
                return Err(config_error(format!(
                    "`{path}` names unknown transform `{other}`; valid transforms: {}",
                    TRANSFORMS.join(", ")
                )))
            }
        };
        spec.finish()?;
        Ok(transform)
    }
}

fn square_or_pair(size: &[usize]) -> (usize, usize) {
    match size {
        [n] => (*n, *n),
        [h, w, ..] => (*h, *w),
        [] => unreachable!("sizes have one or two items"),
    }
}

/// A `size` kwarg: one or two positive integers.
fn required_size(spec: &mut Spec, name: &'static str, ty: &'static str) -> Result<Vec<usize>> {
    let path = spec.kwarg_path(name);
    let values = spec
        .numbers(name, ty, "required")?
        .ok_or_else(|| config_error(format!("`{path}` is required ({ty})")))?;
    let valid = (1..=2).contains(&values.len())
        && values
            .iter()
            .all(|&v| v >= 1.0 && v.fract() == 0.0 && v <= 1e6);
    if !valid {
        return Err(config_error(format!(
            "`{path}` must be a positive integer or [height, width], got {values:?}"
        )));
    }
    Ok(values.iter().map(|&v| v as usize).collect())
}

/// A `[low, high]` kwarg with low <= high.
fn range(
    spec: &mut Spec,
    name: &'static str,
    default_text: &str,
    default: (f64, f64),
) -> Result<(f64, f64)> {
    let path = spec.kwarg_path(name);
    match spec
        .numbers(name, "[float, float]", default_text)?
        .as_deref()
    {
        None => Ok(default),
        Some(&[lo, hi]) if lo <= hi => Ok((lo, hi)),
        Some(other) => Err(config_error(format!(
            "`{path}` must be two numbers [low, high] with low <= high (e.g. \"0.16 1\"), got \
             {other:?}"
        ))),
    }
}

/// torchvision's `RandomResizedCrop.get_params`: the crop box of an image `width` x `height`.
pub fn random_resized_crop_box(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    draws: &mut dyn CropDraws,
) -> Rect {
    let area = (width * height) as f64;
    let log_ratio = ((ratio.0 as f32).ln(), (ratio.1 as f32).ln());
    for _ in 0..10 {
        let target_area = area * draws.uniform(scale.0 as f32, scale.1 as f32) as f64;
        let aspect = draws.uniform(log_ratio.0, log_ratio.1).exp() as f64;
        let w = round_half_even((target_area * aspect).sqrt());
        let h = round_half_even((target_area / aspect).sqrt());
        if 0 < w && w as usize <= width && 0 < h && h as usize <= height {
            let (w, h) = (w as usize, h as usize);
            let y = draws.below(height - h + 1);
            let x = draws.below(width - w + 1);
            return Rect {
                x,
                y,
                width: w,
                height: h,
            };
        }
    }
    // Fallback: the central crop closest to the allowed ratios.
    let in_ratio = width as f64 / height as f64;
    let (min_ratio, max_ratio) = (ratio.0.min(ratio.1), ratio.0.max(ratio.1));
    let (w, h) = if in_ratio < min_ratio {
        (
            width,
            round_half_even(width as f64 / min_ratio).max(0) as usize,
        )
    } else if in_ratio > max_ratio {
        (
            round_half_even(height as f64 * max_ratio).max(0) as usize,
            height,
        )
    } else {
        (width, height)
    };
    Rect {
        x: (width - w) / 2,
        y: (height - h) / 2,
        width: w,
        height: h,
    }
}

/// torchvision's resize output size `(width, height)` for an input `width` x `height`.
pub fn resize_size(target: ResizeTarget, width: usize, height: usize) -> (usize, usize) {
    match target {
        ResizeTarget::Exact { height, width } => (width, height),
        ResizeTarget::ShorterEdge(n) => {
            let (short, long) = if width <= height {
                (width, height)
            } else {
                (height, width)
            };
            let new_long = ((n * long) as f64 / short as f64) as usize;
            if width <= height {
                (n, new_long)
            } else {
                (new_long, n)
            }
        }
    }
}

/// An image with at most one resize and one crop not yet computed: the logical image is `view`
/// of (the source resized as `resize` says, or the source itself). The source's pixels are
/// loaded when first needed, and then only the part that the pending resize or crop reads.
struct Staged<L> {
    /// The source's pixels, once loaded; after the first materialisation, the current image.
    window: Option<Window>,
    load: Option<L>,
    /// Pending resize: the part of the source that is resized, and the output width and height.
    resize: Option<(Rect, usize, usize)>,
    view: Rect,
}

impl<L: FnOnce(Rect) -> Result<Window>> Staged<L> {
    fn size(&self) -> (usize, usize) {
        (self.view.width, self.view.height)
    }

    /// Computes the pending resize and crop: afterwards the image is `window` itself.
    fn materialise(&mut self) -> Result<()> {
        let window = match self.window.take() {
            Some(window) => window,
            None => {
                let needed = match self.resize {
                    Some((src_rect, w, h)) => source_needed(src_rect, w, h, self.view),
                    None => self.view,
                };
                let load = self.load.take().expect("a staged image is loaded once");
                load(needed)?
            }
        };
        let image = match self.resize.take() {
            Some((src_rect, w, h)) => resize(&window, src_rect, w, h, self.view),
            None if (window.x, window.y, window.image.width, window.image.height)
                == (self.view.x, self.view.y, self.view.width, self.view.height) =>
            {
                window.image
            }
            None => window.crop(self.view),
        };
        self.view = Rect::full(image.width, image.height);
        self.window = Some(Window::whole(image));
        Ok(())
    }

    /// The current image, computing what is pending.
    fn image(&mut self) -> Result<&mut RgbImage> {
        self.materialise()?;
        Ok(&mut self.window.as_mut().expect("materialised").image)
    }

    fn crop(&mut self, rect: Rect) {
        self.view = Rect {
            x: self.view.x + rect.x,
            y: self.view.y + rect.y,
            width: rect.width,
            height: rect.height,
        };
    }

    fn resize_to(&mut self, width: usize, height: usize) -> Result<()> {
        if self.size() == (width, height) {
            return Ok(());
        }
        if self.resize.is_some() {
            self.materialise()?;
        }
        self.resize = Some((self.view, width, height));
        self.view = Rect::full(width, height);
        Ok(())
    }

    /// torchvision's `center_crop`, including its zero padding when the crop is larger.
    fn center_crop(&mut self, crop_h: usize, crop_w: usize) -> Result<()> {
        let (w, h) = self.size();
        if crop_w > w || crop_h > h {
            let image = self.image()?;
            let left = if crop_w > w { (crop_w - w) / 2 } else { 0 };
            let top = if crop_h > h { (crop_h - h) / 2 } else { 0 };
            let (pw, ph) = (w.max(crop_w), h.max(crop_h));
            let mut padded = RgbImage::new(pw, ph);
            for row in 0..h {
                let dst = ((row + top) * pw + left) * 3;
                padded.data[dst..dst + w * 3]
                    .copy_from_slice(&image.data[row * w * 3..(row + 1) * w * 3]);
            }
            *image = padded;
            self.view = Rect::full(pw, ph);
        }
        let (w, h) = self.size();
        let top = round_half_even((h - crop_h) as f64 / 2.0) as usize;
        let left = round_half_even((w - crop_w) as f64 / 2.0) as usize;
        self.crop(Rect {
            x: left,
            y: top,
            width: crop_w,
            height: crop_h,
        });
        Ok(())
    }
}

/// One pipeline of transforms, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Transforms(pub Vec<Transform>);

impl Transforms {
    /// Parses `{Name: kwargs, ...}` (order = application order) found at `path`.
    pub fn parse(path: &str, value: &Value) -> Result<Transforms> {
        let map = match value {
            Value::Null => return Ok(Transforms(Vec::new())),
            Value::Object(map) => map,
            _ => {
                return Err(config_error(format!(
                    "`{path}` must be a mapping of transforms {{Name: kwargs}} in order (valid \
                     names: {})",
                    TRANSFORMS.join(", ")
                )))
            }
        };
        map.iter()
            .map(|(name, kwargs)| Transform::parse(path, name, kwargs))
            .collect::<Result<_>>()
            .map(Transforms)
    }

    /// The `(height, width)` every output has, when the pipeline fixes it (ends in a crop or an
    /// exact resize, possibly followed by flips).
    pub fn output_size(&self) -> Option<(usize, usize)> {
        let mut size = None;
        for t in &self.0 {
            match *t {
                Transform::Resize(ResizeTarget::ShorterEdge(_)) => size = None,
                Transform::Resize(ResizeTarget::Exact { height, width })
                | Transform::CenterCrop { height, width }
                | Transform::RandomResizedCrop { height, width, .. } => {
                    size = Some((height, width))
                }
                Transform::RandomHorizontalFlip { .. } => {}
            }
        }
        size
    }

    /// Applies the transforms to an image in memory, drawing randomness from `draws`.
    #[cfg(test)]
    pub fn apply(&self, image: RgbImage, draws: &mut dyn CropDraws) -> RgbImage {
        let size = (image.width, image.height);
        self.apply_lazy(size, |_| Ok(Window::whole(image)), draws)
            .expect("an image in memory loads without error")
    }

    /// Applies the transforms to an image of `size` (width, height) whose pixels `load` provides
    /// when first needed: given the part of the image the transforms read, it returns a window
    /// holding at least that part. Randomness comes from `draws`.
    pub fn apply_lazy(
        &self,
        size: (usize, usize),
        load: impl FnOnce(Rect) -> Result<Window>,
        draws: &mut dyn CropDraws,
    ) -> Result<RgbImage> {
        let mut s = Staged {
            window: None,
            load: Some(load),
            resize: None,
            view: Rect::full(size.0, size.1),
        };
        for t in &self.0 {
            match *t {
                Transform::Resize(target) => {
                    let (w, h) = s.size();
                    let (nw, nh) = resize_size(target, w, h);
                    s.resize_to(nw, nh)?;
                }
                Transform::CenterCrop { height, width } => s.center_crop(height, width)?,
                Transform::RandomResizedCrop {
                    height,
                    width,
                    scale,
                    ratio,
                } => {
                    let (w, h) = s.size();
                    let rect = random_resized_crop_box(w, h, scale, ratio, draws);
                    s.crop(rect);
                    s.resize_to(width, height)?;
                }
                Transform::RandomHorizontalFlip { p } => {
                    if (draws.uniform(0.0, 1.0) as f64) < p {
                        s.image()?.flip_horizontal();
                    }
                }
            }
        }
        s.materialise()?;
        Ok(s.window.expect("materialised").image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Draws replayed from a script.
    struct Script(Vec<f64>);
    impl CropDraws for Script {
        fn uniform(&mut self, _lo: f32, _hi: f32) -> f32 {
            self.0.remove(0) as f32
        }
        fn below(&mut self, n: usize) -> usize {
            let v = self.0.remove(0) as usize;
            assert!(v < n);
            v
        }
    }

    #[test]
    fn parses_the_default_pipelines_with_string_values() {
        let t = Transforms::parse(
            "transforms/train",
            &json!({"Resize": {"size": 256},
                    "RandomResizedCrop": {"scale": "0.16 1", "ratio": "0.75 1.33", "size": 227},
                    "RandomHorizontalFlip": {"p": 0.5}}),
        )
        .unwrap();
        assert_eq!(
            t.0[1],
            Transform::RandomResizedCrop {
                height: 227,
                width: 227,
                scale: (0.16, 1.0),
                ratio: (0.75, 1.33)
            }
        );
        assert_eq!(t.output_size(), Some((227, 227)));
        let e = Transforms::parse("transforms/eval", &json!({"Resize": {"size": 256}})).unwrap();
        assert_eq!(e.output_size(), None);
    }

    #[test]
    fn unknown_names_and_kwargs_are_clear_errors() {
        let e = Transforms::parse("transforms/train", &json!({"ColorJitter": null}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ColorJitter") && e.contains("RandomResizedCrop"),
            "{e}"
        );
        let e = Transforms::parse("transforms/eval", &json!({"CenterCrop": {"sise": 3}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("size"), "{e}");
        let e = Transforms::parse(
            "transforms/eval",
            &json!({"CenterCrop": {"size": 3, "fill": 1}}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no kwarg `fill`") && e.contains("size"), "{e}");
        let e = Transforms::parse(
            "transforms/train",
            &json!({"RandomResizedCrop": {"size": 3, "scale": "1 0.5"}}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("scale") && e.contains("low <= high"), "{e}");
    }

    #[test]
    fn resize_sizes_follow_torchvision() {
        let s = ResizeTarget::ShorterEdge(256);
        assert_eq!(resize_size(s, 500, 375), (341, 256));
        assert_eq!(resize_size(s, 375, 500), (256, 341));
        assert_eq!(resize_size(s, 100, 100), (256, 256));
        let exact = ResizeTarget::Exact {
            height: 10,
            width: 20,
        };
        assert_eq!(resize_size(exact, 500, 375), (20, 10));
    }

    #[test]
    fn crop_box_falls_back_to_the_centre_after_ten_tries() {
        // Every try asks for more area than the image has.
        let mut draws = Script([2.0, 0.0].repeat(10));
        let r = random_resized_crop_box(100, 50, (2.0, 3.0), (0.75, 1.33), &mut draws);
        // 100/50 = 2 > 1.33: full height, width round(50 * 1.33) = 66 (66.5 rounds to even).
        assert_eq!(
            r,
            Rect {
                x: 17,
                y: 0,
                width: 66,
                height: 50
            }
        );
        let mut draws = Script(vec![0.25, 0.0, 3.0, 7.0]);
        let r = random_resized_crop_box(100, 100, (0.16, 1.0), (0.75, 1.33), &mut draws);
        assert_eq!(
            r,
            Rect {
                x: 7,
                y: 3,
                width: 50,
                height: 50
            }
        );
    }

    #[test]
    fn center_crop_rounds_half_to_even_and_pads() {
        let mut img = RgbImage::new(5, 4);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = i as u8;
        }
        let t = Transforms(vec![Transform::CenterCrop {
            height: 3,
            width: 2,
        }]);
        let out = t.apply(img.clone(), &mut Script(vec![]));
        // (4-3)/2 = 0.5 -> 0; (5-2)/2 = 1.5 -> 2.
        assert_eq!(
            out,
            img.crop(Rect {
                x: 2,
                y: 0,
                width: 2,
                height: 3
            })
        );
        let t = Transforms(vec![Transform::CenterCrop {
            height: 6,
            width: 5,
        }]);
        let out = t.apply(img.clone(), &mut Script(vec![]));
        assert_eq!((out.width, out.height), (5, 6));
        assert!(out.data[..15].iter().all(|&v| v == 0));
        assert_eq!(&out.data[15..30], &img.data[..15]);
    }
}
