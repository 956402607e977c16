//! Trunk tests. The parity tests compare with torchvision / pretrainedmodels on the same random
//! weights, saved by PyTorch and read here directly; `testdata/trunks_ref.py` writes them with the
//! Python reference environment (`scripts/setup-pyref.sh`, or `$METRICBENCH_PYREF`), and they skip
//! with a message when it is unavailable.

use super::*;
use crate::losses::{self, BuildContext};
use serde_json::json;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use tch::nn::OptimizerConfig;
use tch::Kind;

const SCRIPT: &str = include_str!("../testdata/trunks_ref.py");

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("METRICBENCH_PYREF").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup-pyref.sh");
    let out = Command::new("bash").arg(&script).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let p = PathBuf::from(text.lines().last()?.trim());
    p.is_file().then_some(p)
}

/// The folder of reference files, generated once per script version (and reused across runs:
/// generating them takes a while).
fn reference() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let Some(py) = python() else {
            eprintln!(
                "SKIPPED: the Python reference environment (scripts/setup-pyref.sh) is unavailable"
            );
            return None;
        };
        let mut h = DefaultHasher::new();
        SCRIPT.hash(&mut h);
        py.hash(&mut h);
        let dir = std::env::temp_dir().join(format!("metricbench-trunks-ref-{:016x}", h.finish()));
        if dir.join("done").is_file() {
            return Some(dir);
        }
        let tmp = std::env::temp_dir().join(format!(
            "metricbench-trunks-ref-tmp-{}-{:016x}",
            std::process::id(),
            h.finish()
        ));
        let script = tmp.join("trunks_ref.py");
        std::fs::create_dir_all(&tmp).ok()?;
        std::fs::write(&script, SCRIPT).ok()?;
        let status = Command::new(&py).arg(&script).arg(&tmp).status().ok()?;
        assert!(status.success(), "trunks_ref.py failed");
        std::fs::write(tmp.join("done"), "").ok()?;
        // Another test process may have finished first; either copy is complete.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Some(dir)
    })
    .as_deref()
}

fn npy(path: &Path) -> Tensor {
    let a = crate::npy::read(path).unwrap();
    let shape: Vec<i64> = a.shape.iter().map(|&s| s as i64).collect();
    Tensor::from_slice(&a.to_f32()).view(shape.as_slice())
}

fn image_options(size: i64) -> TrunkOptions {
    TrunkOptions {
        sample_shape: vec![3, size, size],
        ..TrunkOptions::features(1, Device::Cpu)
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    f64::try_from((a - b).abs().max()).unwrap()
}

fn error_of(r: Result<Model>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

/// Builds `class` with the reference weights and checks its eval-mode output.
fn check_parity(class: &str, name: &str, size: i64, extra: serde_json::Value) {
    let Some(dir) = reference() else { return };
    let mut kwargs = json!({"pretrained": dir.join(format!("{name}.pth"))});
    for (k, v) in extra.as_object().unwrap() {
        kwargs[k] = v.clone();
    }
    let trunk = build_trunk(&json!({ class: kwargs }), &image_options(size)).unwrap();
    trunk.set_train(false);
    let x = npy(&dir.join(format!("{name}_input.npy")));
    let want = npy(&dir.join(format!("{name}_output.npy")));
    let got = tch::no_grad(|| trunk.forward(&x));
    let diff = max_abs_diff(&got, &want);
    eprintln!(
        "{class}: max |difference| {diff:e} (outputs up to {})",
        f64::try_from(want.abs().max()).unwrap()
    );
    assert!(diff < 1e-4, "{class} differs from the reference by {diff}");
    assert_eq!(trunk.output_dim, want.size()[1]);
}

#[test]
fn resnet50_matches_torchvision() {
    check_parity("resnet50", "resnet50", 96, json!({}));
}

#[test]
fn inception_v3_matches_torchvision() {
    check_parity(
        "inception_v3",
        "inception_v3",
        107,
        json!({"transform_input": false}),
    );
}

#[test]
fn bninception_matches_pretrainedmodels_from_a_legacy_format_file() {
    check_parity("BNInception", "bninception", 224, json!({}));
}

#[test]
fn inception_v3_layers_to_extract_match_pooled_torchvision_layers() {
    let Some(dir) = reference() else { return };
    let opts = TrunkOptions {
        layers_to_extract: vec!["Mixed_5d".into(), "Mixed_6e".into(), "fc".into()],
        ..image_options(107)
    };
    let spec = json!({"inception_v3": {
        "pretrained": dir.join("inception_v3.pth"), "transform_input": false}});
    let (trunk, embedder) =
        build_cascaded(&spec, &json!({"MLP": {"layer_sizes": [8]}}), &opts).unwrap();
    assert_eq!(trunk.output_parts, [288, 768, 2048]);
    assert_eq!(embedder.output_parts, [8, 8, 8]);
    trunk.set_train(false);
    let x = npy(&dir.join("inception_v3_input.npy"));
    let want = npy(&dir.join("inception_v3_taps.npy"));
    let got = tch::no_grad(|| trunk.forward(&x));
    assert!(max_abs_diff(&got, &want) < 1e-4);
}

#[test]
fn hub_file_names_include_every_name_torchvision_publishes() {
    let Some(dir) = reference() else { return };
    let text = std::fs::read_to_string(dir.join("hub_names.json")).unwrap();
    let names: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (arch, files) in names.as_object().unwrap() {
        for f in files.as_array().unwrap() {
            let f = f.as_str().unwrap();
            assert!(
                pretrained::hub_file_names(arch).contains(&f),
                "{arch}: {f} is not a known hub file name"
            );
        }
    }
}

#[test]
fn pretrained_imagenet_reads_the_hub_cache_under_pytorch_home() {
    let Some(dir) = reference() else { return };
    let home = tempfile::tempdir().unwrap();
    let checkpoints = home.path().join("hub").join("checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    std::fs::copy(
        dir.join("resnet50.pth"),
        checkpoints.join("resnet50-19c8e357.pth"),
    )
    .unwrap();
    let opts = TrunkOptions {
        pytorch_home: Some(home.path().to_path_buf()),
        ..image_options(96)
    };
    let trunk = build_trunk(&json!({"ResNet50": {"pretrained": true}}), &opts).unwrap();
    trunk.set_train(false);
    let got = tch::no_grad(|| trunk.forward(&npy(&dir.join("resnet50_input.npy"))));
    assert!(max_abs_diff(&got, &npy(&dir.join("resnet50_output.npy"))) < 1e-4);
}

#[test]
fn missing_hub_weights_name_the_file_and_where_to_get_it() {
    let home = tempfile::tempdir().unwrap();
    let opts = TrunkOptions {
        pytorch_home: Some(home.path().to_path_buf()),
        ..image_options(224)
    };
    let e = error_of(build_trunk(
        &json!({"bninception": {"pretrained": "imagenet"}}),
        &opts,
    ));
    assert!(e.contains("bn_inception-52deb4733.pth"), "{e}");
    assert!(
        e.contains("http://data.lip6.fr/cadene/pretrainedmodels/"),
        "{e}"
    );
    assert!(e.contains(
        &home
            .path()
            .join("hub")
            .join("checkpoints")
            .display()
            .to_string()
    ));
    let e = error_of(build_trunk(
        &json!({"resnet18": {"pretrained": home.path().join("nope.pth")}}),
        &image_options(64),
    ));
    assert!(
        e.contains("nope.pth") && e.contains("does not exist"),
        "{e}"
    );
}

#[test]
fn weights_of_another_architecture_list_the_mismatches() {
    let Some(dir) = reference() else { return };
    let e = error_of(build_trunk(
        &json!({"resnet18": {"pretrained": dir.join("resnet50.pth")}}),
        &image_options(64),
    ));
    assert!(e.contains("does not match trunk `resnet18`"), "{e}");
    assert!(e.contains("unexpected: layer1.0.bn3.bias"), "{e}");
    assert!(
        e.contains(
            "shape mismatches: layer1.0.conv1.weight (file [64, 64, 1, 1], model [64, 64, 3, 3])"
        ),
        "{e}"
    );
    let e = error_of(build_trunk(
        &json!({"bninception": {"pretrained": dir.join("resnet50.pth")}}),
        &image_options(224),
    ));
    assert!(e.contains("missing: conv1_7x7_s2.bias"), "{e}");
}

#[test]
fn truncated_checkpoints_are_errors_naming_the_file() {
    let Some(dir) = reference() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for name in ["resnet50", "bninception"] {
        let bytes = std::fs::read(dir.join(format!("{name}.pth"))).unwrap();
        for keep in [bytes.len() / 2, bytes.len() - 100, 60] {
            let path = tmp.path().join(format!("{name}-{keep}.pth"));
            std::fs::write(&path, &bytes[..keep]).unwrap();
            let arch = if name == "resnet50" {
                "resnet50"
            } else {
                "bninception"
            };
            let size = if name == "resnet50" { 96 } else { 224 };
            let e = error_of(build_trunk(
                &json!({ arch: {"pretrained": &path} }),
                &image_options(size),
            ));
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains("PyTorch checkpoint"), "{e}");
        }
    }
}

#[test]
fn garbage_weight_files_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty.pth", Vec::new()),
        ("text.pth", b"not a checkpoint\n".to_vec()),
        ("zip.pth", b"PK\x03\x04 truncated".to_vec()),
        (
            "bad.safetensors",
            b"\x08\x00\x00\x00\x00\x00\x00\x00{}".to_vec(),
        ),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = error_of(build_trunk(
            &json!({"resnet18": {"pretrained": &path}}),
            &image_options(64),
        ));
        assert!(e.contains(name), "{e}");
    }
}

#[test]
fn safetensors_weights_load_directly() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("convnet.safetensors");
    let a = build_trunk(&json!({"resnet18": null}), &image_options(64)).unwrap();
    a.vs.save(&path).unwrap();
    let b = build_trunk(
        &json!({"resnet18": {"pretrained": &path}}),
        &image_options(64),
    )
    .unwrap();
    a.set_train(false);
    b.set_train(false);
    let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let (ya, yb) = tch::no_grad(|| (a.forward(&x), b.forward(&x)));
    assert_eq!(max_abs_diff(&ya, &yb), 0.0);
}

#[test]
fn image_trunks_reject_inputs_they_cannot_take() {
    let e = error_of(build_trunk(
        &json!({"resnet50": null}),
        &TrunkOptions::features(64, Device::Cpu),
    ));
    assert!(e.contains("3-channel images") && e.contains("[64]"), "{e}");
    let e = error_of(build_trunk(
        &json!({"bninception": null}),
        &image_options(96),
    ));
    assert!(e.contains("7 x 7") && e.contains("96 x 96"), "{e}");
    let e = error_of(build_trunk(
        &json!({"inception_v3": null}),
        &image_options(60),
    ));
    assert!(e.contains("75 x 75"), "{e}");
    let opts = TrunkOptions {
        layers_to_extract: vec!["Mixed_5d".into(), "Mixed_9z".into()],
        ..image_options(80)
    };
    let e = match build_cascaded(
        &json!({"inception_v3": null}),
        &json!({"MLP": {"layer_sizes": [4]}}),
        &opts,
    ) {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("Mixed_9z") && e.contains("Mixed_6e"), "{e}");
    let e = error_of(build_trunk(
        &json!({"resnet50": {"pretrained": 3}}),
        &image_options(64),
    ));
    assert!(e.contains("models/trunk/resnet50/pretrained"), "{e}");
}

#[test]
fn input_conventions_follow_the_trunk() {
    let c = |v| input_convention(&v).unwrap().map(|c| c.name);
    assert_eq!(
        c(json!({"bninception": {"pretrained": "imagenet"}})),
        Some("bninception")
    );
    assert_eq!(c(json!({"ResNet50": null})), Some("imagenet"));
    assert_eq!(c(json!({"inception_v3": null})), Some("imagenet"));
    assert_eq!(c(json!({"MLP": {"layer_sizes": [4]}})), None);
    assert_eq!(
        c(json!({"TorchScript": {"path": "m.pt", "input_convention": "bninception"}})),
        Some("bninception")
    );
}

/// Class-dependent random images and their labels.
fn toy_batch(n: i64, size: i64) -> (Tensor, Tensor) {
    let labels = Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(4);
    let centres = Tensor::randn([4, 3, 1, 1], (Kind::Float, Device::Cpu));
    let x = centres.index_select(0, &labels)
        + Tensor::randn([n, 3, size, size], (Kind::Float, Device::Cpu)) * 0.5;
    (x, labels)
}

fn train_steps(trunk: &Model, steps: usize) -> Vec<f64> {
    tch::manual_seed(0);
    let embedder = build_embedder(
        &json!({"MLP": {"layer_sizes": [8]}}),
        trunk.output_dim,
        Device::Cpu,
    )
    .unwrap();
    let ctx = BuildContext {
        num_classes: Some(4),
        embedding_size: Some(8),
        device: Device::Cpu,
    };
    let loss = losses::build("metric_loss", &json!({"ContrastiveLoss": null}), &ctx).unwrap();
    let mut opt_t = nn::Sgd::default().build(&trunk.vs, 0.05).unwrap();
    let mut opt_e = nn::Sgd::default().build(&embedder.vs, 0.05).unwrap();
    let (x, labels) = toy_batch(16, 16);
    let mut values = Vec::new();
    for _ in 0..steps {
        let emb = embedder.forward(&trunk.forward(&x));
        let (l, _) = loss.forward(&emb, &labels, None).unwrap();
        opt_t.zero_grad();
        opt_e.zero_grad();
        l.backward();
        opt_t.step();
        opt_e.step();
        values.push(f64::try_from(&l).unwrap());
    }
    values
}

#[test]
fn a_torchscript_trunk_is_fine_tuned() {
    let Some(dir) = reference() else { return };
    let trunk = build_trunk(
        &json!({"TorchScript": {"path": dir.join("small.pt")}}),
        &image_options(16),
    )
    .unwrap();
    assert_eq!(trunk.output_dim, 16);
    assert!(!trunk.vs.trainable_variables().is_empty());
    let before: Vec<Tensor> = trunk
        .vs
        .trainable_variables()
        .iter()
        .map(|t| t.copy())
        .collect();
    let losses = train_steps(&trunk, 8);
    eprintln!("TorchScript trunk losses: {losses:?}");
    assert!(losses.last().unwrap() < &(losses[0] * 0.9), "{losses:?}");
    let after = trunk.vs.trainable_variables();
    assert!(before
        .iter()
        .zip(&after)
        .any(|(b, a)| max_abs_diff(b, a) > 0.0));
}

#[test]
fn torchscript_files_that_do_not_load_or_give_the_wrong_shape_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.pt");
    std::fs::write(&garbage, b"not torchscript").unwrap();
    let e = error_of(build_trunk(
        &json!({"TorchScript": {"path": &garbage}}),
        &image_options(16),
    ));
    assert!(e.contains("garbage.pt") && e.contains("TorchScript"), "{e}");
    let e = error_of(build_trunk(
        &json!({"TorchScript": {"path": tmp.path().join("absent.pt")}}),
        &image_options(16),
    ));
    assert!(
        e.contains("absent.pt") && e.contains("does not exist"),
        "{e}"
    );
    let Some(dir) = reference() else { return };
    let e = error_of(build_trunk(
        &json!({"TorchScript": {"path": dir.join("wrong_shape.pt")}}),
        &image_options(16),
    ));
    assert!(
        e.contains("[batch, features]") && e.contains("[2, 8, 16, 16]"),
        "{e}"
    );
    let e = error_of(build_trunk(
        &json!({"TorchScript": {"path": dir.join("small.pt")}}),
        &TrunkOptions::features(5, Device::Cpu),
    ));
    assert!(e.contains("fails on a batch of shape [2, 5]"), "{e}");
}

fn running_stats(m: &Model) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> =
        m.vs.variables()
            .into_iter()
            .filter(|(k, _)| k.contains("running_"))
            .map(|(k, t)| (k, t.copy()))
            .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn freeze_batchnorm_keeps_running_statistics_and_still_trains_the_affine_weights() {
    for freeze in [true, false] {
        tch::manual_seed(1);
        let opts = TrunkOptions {
            freeze_batchnorm: freeze,
            ..image_options(16)
        };
        let trunk = build_trunk(&json!({"ConvNet": {"channels": [8, 8]}}), &opts).unwrap();
        let stats = running_stats(&trunk);
        assert_eq!(stats.len(), 4);
        let bn_weight = trunk.vs.variables()["bn0.weight"].copy();
        train_steps(&trunk, 3);
        let moved = stats
            .iter()
            .zip(running_stats(&trunk))
            .map(|((_, a), (_, b))| max_abs_diff(a, &b))
            .fold(0.0, f64::max);
        if freeze {
            assert_eq!(moved, 0.0, "frozen BatchNorm statistics moved");
        } else {
            assert!(moved > 1e-3, "BatchNorm statistics did not move ({moved})");
        }
        let w = &trunk.vs.variables()["bn0.weight"];
        assert!(
            max_abs_diff(&bn_weight, w) > 0.0,
            "BatchNorm weights did not train"
        );
    }
}

#[test]
fn evaluation_mode_uses_running_statistics() {
    let trunk = build_trunk(&json!({"ConvNet": {"channels": [4]}}), &image_options(8)).unwrap();
    let x = Tensor::randn([4, 3, 8, 8], (Kind::Float, Device::Cpu)) * 3.0 + 5.0;
    let train = tch::no_grad(|| trunk.forward(&x));
    assert!(trunk.set_train(false));
    let eval_a = tch::no_grad(|| trunk.forward(&x));
    let eval_b = tch::no_grad(|| trunk.forward(&x.narrow(0, 0, 2)));
    // Eval mode: a sample's output does not depend on the rest of the batch.
    assert!(max_abs_diff(&eval_a.narrow(0, 0, 2), &eval_b) < 1e-5);
    assert!(max_abs_diff(&train, &eval_a) > 1e-3);
}
