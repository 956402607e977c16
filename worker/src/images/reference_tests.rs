//! The pipeline against torchvision + PIL on the same files: decoding, output sizes, pixels after
//! Resize + CenterCrop, crop boxes for recorded draws (fallback included), whole train pipelines
//! replaying torchvision's draws, and normalisation in both conventions. Reference values come from
//! `scripts/reference/image_transforms.py`, run by the reference Python environment; the tests are
//! skipped, saying so, when that environment cannot be set up.

use super::to_tensor::write_chw;
use super::transforms::{random_resized_crop_box, CropDraws, Transforms};
use super::{decode, Decoder, Rect};
use crate::input_convention::InputConvention;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The reference Python: `METRICBENCH_PYREF`, else what `scripts/setup-pyref.sh` provisions.
fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("METRICBENCH_PYREF") {
        return Some(PathBuf::from(p));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup-pyref.sh");
    let out = Command::new("bash").arg(script).output().ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.lines().last()?.trim());
    (out.status.success() && path.exists()).then_some(path)
}

/// The reference files, generated once per test process.
fn reference() -> Option<&'static (tempfile::TempDir, Value)> {
    static REFERENCE: OnceLock<Option<(tempfile::TempDir, Value)>> = OnceLock::new();
    REFERENCE
        .get_or_init(|| {
            let py = python()?;
            let dir = tempfile::tempdir().ok()?;
            let script = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../scripts/reference/image_transforms.py");
            let status = Command::new(py)
                .arg(&script)
                .arg(dir.path())
                .status()
                .ok()?;
            assert!(status.success(), "{} failed", script.display());
            let manifest = std::fs::read_to_string(dir.path().join("manifest.json")).ok()?;
            Some((dir, serde_json::from_str(&manifest).ok()?))
        })
        .as_ref()
}

macro_rules! reference_or_skip {
    () => {
        match reference() {
            Some(r) => r,
            None => {
                eprintln!(
                    "SKIPPED: the reference Python environment (scripts/setup-pyref.sh) is not \
                     available"
                );
                return;
            }
        }
    };
}

/// Draws replayed from torchvision's recording: floats for uniforms, integers for randint.
struct Recorded(Vec<f64>, usize);

impl CropDraws for Recorded {
    fn uniform(&mut self, _lo: f32, _hi: f32) -> f32 {
        self.1 += 1;
        self.0[self.1 - 1] as f32
    }
    fn below(&mut self, n: usize) -> usize {
        self.1 += 1;
        let v = self.0[self.1 - 1] as usize;
        assert!(v < n, "recorded draw {v} outside 0..{n}");
        v
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn crop_boxes_match_torchvision_for_recorded_draws() {
    let (_, manifest) = reference_or_skip!();
    let boxes = manifest["boxes"].as_array().unwrap();
    let mut fallbacks = 0;
    for case in boxes {
        let (w, h) = (
            case["width"].as_u64().unwrap() as usize,
            case["height"].as_u64().unwrap() as usize,
        );
        let scale = floats(&case["scale"]);
        let ratio = floats(&case["ratio"]);
        let draws = floats(&case["draws"]);
        fallbacks += usize::from(draws.len() == 20);
        let mut recorded = Recorded(draws.clone(), 0);
        let got = random_resized_crop_box(
            w,
            h,
            (scale[0], scale[1]),
            (ratio[0], ratio[1]),
            &mut recorded,
        );
        let b = floats(&case["box"]);
        let want = Rect {
            y: b[0] as usize,
            x: b[1] as usize,
            height: b[2] as usize,
            width: b[3] as usize,
        };
        assert_eq!(got, want, "{w}x{h} scale {scale:?} ratio {ratio:?}");
        assert_eq!(recorded.1, draws.len(), "every recorded draw consumed");
    }
    assert!(
        fallbacks >= 10,
        "the fallback is exercised ({fallbacks} cases)"
    );
}

#[test]
fn decoding_matches_pil() {
    let (dir, _) = reference_or_skip!();
    // libjpeg-turbo is PIL's decoder too: every pixel is identical, whatever the chroma
    // subsampling, progressive or not, grayscale or CMYK.
    for name in [
        "rgb.png",
        "small.png",
        "rgb.jpg",
        "rgb422p.jpg",
        "rgb444.jpg",
        "gray.jpg",
        "cmyk.jpg",
    ] {
        let ours = decode(&std::fs::read(dir.path().join(name)).unwrap()).unwrap();
        let pil = std::fs::read(dir.path().join(format!("{name}.rgb"))).unwrap();
        assert_eq!(ours.data.len(), pil.len(), "{name}: size");
        let differing = ours.data.iter().zip(&pil).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{name}: {differing} values differ from PIL's");
    }
}

/// Every reference case, through the pipeline's own path (the decoder decoding only the window
/// the transforms read): sizes exact and every value bit-identical, JPEGs included.
#[test]
fn transforms_match_torchvision() {
    let (dir, manifest) = reference_or_skip!();
    for case in manifest["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let image = case["image"].as_str().unwrap();
        let convention = match case["convention"].as_str().unwrap() {
            "imagenet" => InputConvention::IMAGENET,
            _ => InputConvention::BN_INCEPTION,
        };
        let transforms = Transforms::parse("transforms/test", &case["transforms"]).unwrap();
        let bytes = std::fs::read(dir.path().join(image)).unwrap();
        let decoder = Decoder::new(&bytes).unwrap();
        let size = decoder.size();
        let draws = floats(&case["draws"]);
        let mut recorded = Recorded(draws.clone(), 0);
        let out = transforms
            .apply_lazy(size, move |rect| decoder.decode(rect), &mut recorded)
            .unwrap();
        assert_eq!(recorded.1, draws.len(), "{name}: every draw consumed");
        let shape: Vec<usize> = floats(&case["shape"]).iter().map(|&x| x as usize).collect();
        assert_eq!(vec![3, out.height, out.width], shape, "{name}: size");
        let mut ours = vec![0f32; 3 * out.width * out.height];
        write_chw(&out, &convention, &mut ours);
        let theirs = read_f32(&dir.path().join(format!("{name}.bin")));
        assert_eq!(ours.len(), theirs.len(), "{name}: values");
        let plane = out.width * out.height;
        let mut worst = 0f32;
        let mut differing = 0;
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let c = i / plane;
            // Back to pixel levels: |a - b| * std / scale * 255.
            let levels = (a - b).abs() * convention.std[c] / convention.scale * 255.0;
            worst = worst.max(levels);
            differing += usize::from(a.to_bits() != b.to_bits());
        }
        assert_eq!(
            differing, 0,
            "{name}: {differing} values differ from torchvision's, up to {worst} levels"
        );
    }
}
