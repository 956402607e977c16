//! Behaviour every loss must share: finite gradients on random inputs, a graph-keeping zero when
//! the batch has nothing to compare, mined tuples accepted, and clear errors for bad input.

use super::*;
use crate::distances::Distance;
use crate::miners;
use crate::tuples::{
    all_triplets, convert_to_triplets, gather_pairs, miner_weights, random_triplets, IndicesTuple,
};
use serde_json::json;
use tch::{Device, Kind, Tensor};

fn ctx(c: Option<i64>, d: Option<i64>) -> BuildContext {
    BuildContext {
        num_classes: c,
        embedding_size: d,
        device: Device::Cpu,
    }
}

/// Every loss class with kwargs that make it valid on a (12 x 6, 4 classes) batch.
fn all_specs() -> Vec<serde_json::Value> {
    LOSSES
        .iter()
        .map(|&name| match name {
            "CrossEntropyLoss" => json!({ name: {"label_smoothing": 0.1} }),
            "SoftTripleLoss" => json!({ name: {"centers_per_class": 3} }),
            "MarginLoss" => json!({ name: {"learn_beta": true, "nu": 0.1, "num_classes": 4} }),
            "SignalToNoiseRatioContrastiveLoss" => json!({ name: {
                "embedding_regularizer": {"ZeroMeanRegularizer": null},
                "embedding_reg_weight": 0.1} }),
            "ProxyAnchorLoss" => json!({ name: {
                "weight_regularizer": {"LpRegularizer": null}, "weight_reg_weight": 0.01} }),
            _ => json!({ name: null }),
        })
        .collect()
}

#[test]
fn every_loss_backpropagates_finite_gradients() {
    tch::manual_seed(7);
    let labels = Tensor::from_slice(&(0..12).map(|i| i % 4).collect::<Vec<i64>>());
    for spec in all_specs() {
        let loss = build("metric_loss", &spec, &ctx(Some(4), Some(6))).unwrap();
        // CrossEntropyLoss reads rows as logits, one per class.
        let d = if loss.class == "CrossEntropyLoss" {
            4
        } else {
            6
        };
        let emb = Tensor::randn([12, d], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let (value, _) = loss.forward(&emb, &labels, None).unwrap();
        let v = f64::try_from(&value).unwrap();
        assert!(v.is_finite() && v > 0.0, "{}: value {v}", loss.class);
        value.backward();
        let g = emb.grad();
        assert!(g.defined(), "{}: no gradient", loss.class);
        assert!(
            bool::try_from(g.isfinite().all()).unwrap(),
            "{}: non-finite gradient",
            loss.class
        );
        assert!(
            f64::try_from(g.abs().sum(Kind::Double)).unwrap() > 0.0,
            "{}",
            loss.class
        );
        if let Some(vs) = loss.var_store() {
            for (name, p) in vs.variables() {
                let pg = p.grad();
                assert!(
                    pg.defined(),
                    "{}: parameter {name} got no gradient",
                    loss.class
                );
                assert!(
                    bool::try_from(pg.isfinite().all()).unwrap(),
                    "{}: {name}",
                    loss.class
                );
            }
        }
    }
}

#[test]
fn nothing_to_compare_gives_a_graph_keeping_zero() {
    // One sample: no pair and no triplet exists. Classification / proxy losses still have a
    // target, so only the tuple-based losses are checked.
    let tuple_based = [
        "CircleLoss",
        "ContrastiveLoss",
        "FastAPLoss",
        "GeneralizedLiftedStructureLoss",
        "LiftedStructureLoss",
        "MarginLoss",
        "MultiSimilarityLoss",
        "NCALoss",
        "NTXentLoss",
        "SignalToNoiseRatioContrastiveLoss",
        "SupConLoss",
        "TripletMarginLoss",
        "TupletMarginLoss",
    ];
    for name in tuple_based {
        let loss = build("l", &json!({ name: null }), &ctx(None, None)).unwrap();
        let emb = Tensor::randn([1, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let (value, _) = loss
            .forward(&emb, &Tensor::from_slice(&[0i64]), None)
            .unwrap();
        assert_eq!(f64::try_from(&value).unwrap(), 0.0, "{name}");
        value.backward();
        assert!(emb.grad().defined(), "{name}: the zero must keep the graph");
    }
    // All labels distinct: no positive pair, so no triplet either.
    for name in ["TripletMarginLoss", "MarginLoss", "FastAPLoss"] {
        let loss = build("l", &json!({ name: null }), &ctx(None, None)).unwrap();
        let emb = Tensor::randn([4, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let labels = Tensor::from_slice(&[0i64, 1, 2, 3]);
        let (value, _) = loss.forward(&emb, &labels, None).unwrap();
        assert_eq!(f64::try_from(&value).unwrap(), 0.0, "{name}");
        value.backward();
        assert!(emb.grad().defined());
    }
}

#[test]
fn losses_accept_mined_tuples() {
    tch::manual_seed(3);
    let labels = Tensor::from_slice(&(0..12).map(|i| i % 4).collect::<Vec<i64>>());
    let emb = Tensor::randn([12, 6], (Kind::Double, Device::Cpu));
    let pairs = miners::build("m", &json!({"MultiSimilarityMiner": {"epsilon": 0.5}})).unwrap();
    let triplets = miners::build("m", &json!({"BatchHardMiner": null})).unwrap();
    let (pt, _) = pairs.mine(&emb, &labels).unwrap();
    let (tt, _) = triplets.mine(&emb, &labels).unwrap();
    for spec in all_specs() {
        let loss = build("metric_loss", &spec, &ctx(Some(4), Some(6))).unwrap();
        if loss.class == "CrossEntropyLoss" {
            continue;
        }
        for t in [&pt, &tt] {
            let (v, _) = loss.forward(&emb, &labels, Some(t)).unwrap();
            assert!(f64::try_from(&v).unwrap().is_finite(), "{}", loss.class);
        }
    }
    // Triplet loss on BatchHardMiner triplets = mean of the positive hinge values over exactly
    // those triplets (one per anchor here).
    let loss = build(
        "l",
        &json!({"TripletMarginLoss": {"margin": 0.1}}),
        &ctx(None, None),
    )
    .unwrap();
    let (v, stats) = loss.forward(&emb, &labels, Some(&tt)).unwrap();
    assert_eq!(stats["num_triplets"], 12.0);
    let mat = Distance::lp().matrix(&emb, &emb);
    let IndicesTuple::Triplets { a, p, n } = &tt else {
        panic!("triplets expected")
    };
    let h = (gather_pairs(&mat, a, p) - gather_pairs(&mat, a, n) + 0.1).relu();
    let nz = h.masked_select(&h.gt(0.0));
    let expected = f64::try_from(nz.mean(Kind::Double)).unwrap();
    assert!((f64::try_from(&v).unwrap() - expected).abs() < 1e-12);
}

#[test]
fn miner_weights_follow_pml() {
    // Triplets (0,1,2), (0,1,3) over 5 samples -> [1, 1, .5, .5, 0] (reference 1.3).
    let t = IndicesTuple::Triplets {
        a: Tensor::from_slice(&[0i64, 0]),
        p: Tensor::from_slice(&[1i64, 1]),
        n: Tensor::from_slice(&[2i64, 3]),
    };
    let w = miner_weights(Some(&t), 5, Kind::Double, Device::Cpu, false);
    assert_eq!(
        Vec::<f64>::try_from(&w).unwrap(),
        vec![1.0, 1.0, 0.5, 0.5, 0.0]
    );
    let w = miner_weights(Some(&t), 5, Kind::Double, Device::Cpu, true);
    assert_eq!(
        Vec::<f64>::try_from(&w).unwrap(),
        vec![1.0, 0.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        Vec::<f64>::try_from(&miner_weights(None, 2, Kind::Double, Device::Cpu, false)).unwrap(),
        vec![1.0, 1.0]
    );
    // Mined pairs to triplets: every (a1[i], p[i], n[j]) with a1[i] == a2[j].
    let pairs = IndicesTuple::Pairs {
        a1: Tensor::from_slice(&[0i64, 2]),
        p: Tensor::from_slice(&[1i64, 3]),
        a2: Tensor::from_slice(&[0i64, 0, 1]),
        n: Tensor::from_slice(&[4i64, 5, 6]),
    };
    let labels = Tensor::zeros([7], (Kind::Int64, Device::Cpu));
    let (a, p, n) = convert_to_triplets(Some(&pairs), &labels, None);
    assert_eq!(Vec::<i64>::try_from(&a).unwrap(), vec![0, 0]);
    assert_eq!(Vec::<i64>::try_from(&p).unwrap(), vec![1, 1]);
    assert_eq!(Vec::<i64>::try_from(&n).unwrap(), vec![4, 5]);
}

#[test]
fn random_triplets_respect_labels_and_counts() {
    tch::manual_seed(1);
    let labels = Tensor::from_slice(&[0i64, 0, 0, 1, 1, 2]);
    let (a, p, n) = random_triplets(&labels, Some(4), None);
    let host = [0i64, 0, 0, 1, 1, 2];
    let (a, p, n) = (
        Vec::<i64>::try_from(&a).unwrap(),
        Vec::<i64>::try_from(&p).unwrap(),
        Vec::<i64>::try_from(&n).unwrap(),
    );
    // 5 anchors in classes with >= 2 members, 4 triplets each.
    assert_eq!(a.len(), 20);
    for i in 0..a.len() {
        assert_ne!(a[i], p[i]);
        assert_eq!(host[a[i] as usize], host[p[i] as usize]);
        assert_ne!(host[a[i] as usize], host[n[i] as usize]);
    }
    // TripletMarginLoss(triplets_per_anchor=k) uses them.
    let loss = build(
        "l",
        &json!({"TripletMarginLoss": {"triplets_per_anchor": 4}}),
        &ctx(None, None),
    )
    .unwrap();
    let emb = Tensor::randn([6, 3], (Kind::Double, Device::Cpu));
    let (_, stats) = loss.forward(&emb, &labels, None).unwrap();
    assert_eq!(stats["num_triplets"], 20.0);
}

fn err(spec: serde_json::Value, c: &BuildContext) -> String {
    match build("metric_loss", &spec, c) {
        Ok(_) => panic!("{spec} should fail"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_configs_are_clear_config_errors() {
    let c = ctx(Some(4), Some(6));
    let e = err(json!({"TripletLoss": null}), &c);
    assert!(
        e.contains("unknown class `TripletLoss`") && e.contains("TripletMarginLoss"),
        "{e}"
    );
    let e = err(json!({"TripletMarginLoss": {"margn": 0.1}}), &c);
    assert!(e.contains("no kwarg `margn`"), "{e}");
    assert!(
        e.contains("margin (float)") && e.contains("swap (bool)"),
        "{e}"
    );
    let e = err(json!({"TripletMarginLoss": {"margin": "big"}}), &c);
    assert!(e.contains("margin` must be a number, got a string"), "{e}");
    let e = err(
        json!({"ContrastiveLoss": {"distance": {"Cosine": null}}}),
        &c,
    );
    assert!(e.contains("CosineSimilarity"), "{e}");
    let e = err(
        json!({"ContrastiveLoss": {"reducer": {"MeanReducer": {"x": 1}}}}),
        &c,
    );
    assert!(e.contains("no kwarg `x`"), "{e}");
    let e = err(
        json!({"TripletMarginLoss": {"triplets_per_anchor": "some"}}),
        &c,
    );
    assert!(e.contains("positive integer or \"all\""), "{e}");
    for name in [
        "ArcFaceLoss",
        "ProxyAnchorLoss",
        "SoftTripleLoss",
        "NormalizedSoftmaxLoss",
    ] {
        let e = err(json!({ name: null }), &ctx(None, Some(6)));
        assert!(e.contains("needs num_classes"), "{e}");
        let e = err(json!({ name: null }), &ctx(Some(3), None));
        assert!(e.contains("needs embedding_size"), "{e}");
    }
    let e = err(
        json!({"CircleLoss": {"distance": {"LpDistance": null}}}),
        &c,
    );
    assert!(e.contains("needs a similarity"), "{e}");
    let e = err(
        json!({"ArcFaceLoss": {"num_classes": 3, "embedding_size": 2, "distance": {"DotProductSimilarity": null}}}),
        &c,
    );
    assert!(e.contains("needs CosineSimilarity"), "{e}");
    for bad in [
        json!({"ContrastiveLoss": null, "TripletMarginLoss": null}),
        json!("ContrastiveLoss"),
        json!({"ContrastiveLoss": 3}),
    ] {
        assert_eq!(
            crate::errors::kind_of(&build("l", &bad, &c).err().unwrap()),
            metricbench_protocol::protocol::ErrorKind::Config
        );
    }
}

#[test]
fn bad_batches_are_errors_not_panics() {
    let loss = build("l", &json!({"ContrastiveLoss": null}), &ctx(None, None)).unwrap();
    let emb = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
    let e = loss
        .forward(&emb, &Tensor::from_slice(&[0i64, 1, 0]), None)
        .unwrap_err();
    assert!(format!("{e}").contains("one label per embedding"), "{e}");
    let e = loss
        .forward(&emb.view([-1]), &Tensor::from_slice(&[0i64, 1, 0]), None)
        .unwrap_err();
    assert!(format!("{e}").contains("2-D"), "{e}");
    let e = loss
        .forward(&emb, &Tensor::from_slice(&[0.0f32, 1.0, 0.0, 1.0]), None)
        .unwrap_err();
    assert!(format!("{e}").contains("integers"), "{e}");
    let bad = IndicesTuple::Triplets {
        a: Tensor::from_slice(&[0i64]),
        p: Tensor::from_slice(&[9i64]),
        n: Tensor::from_slice(&[1i64]),
    };
    let labels = Tensor::from_slice(&[0i64, 1, 0, 1]);
    let e = loss.forward(&emb, &labels, Some(&bad)).unwrap_err();
    assert!(format!("{e}").contains("outside the batch"), "{e}");
    let arc = build("l", &json!({"ArcFaceLoss": null}), &ctx(Some(2), Some(3))).unwrap();
    let e = arc
        .forward(&emb, &Tensor::from_slice(&[0i64, 1, 2, 1]), None)
        .unwrap_err();
    assert!(format!("{e}").contains("built for 2 classes"), "{e}");
    let margin = build(
        "l",
        &json!({"MarginLoss": {"num_classes": 2, "learn_beta": true}}),
        &ctx(None, None),
    )
    .unwrap();
    let e = margin
        .forward(&emb, &Tensor::from_slice(&[0i64, 1, 2, 1]), None)
        .unwrap_err();
    assert!(format!("{e}").contains("built for 2 classes"), "{e}");
    let ce = build("l", &json!({"CrossEntropyLoss": null}), &ctx(None, None)).unwrap();
    let e = ce
        .forward(&emb, &Tensor::from_slice(&[0i64, 1, 5, 1]), None)
        .unwrap_err();
    assert!(format!("{e}").contains("number of classes"), "{e}");
}

#[test]
fn pipeline_applies_weights_miners_and_roles() {
    let cfg_value = json!({
        "loss_funcs": {"metric_loss": {"ContrastiveLoss": null}, "aux": {"MultiSimilarityLoss": null}},
        "loss_weights": {"aux": 0.5},
        "mining_funcs": {"post_gradient_miner": {"PairMarginMiner": null}},
    });
    let cfg = crate::spec::Config(&cfg_value);
    let p = pipeline::LossPipeline::from_config(&cfg, &ctx(Some(4), Some(6))).unwrap();
    tch::manual_seed(5);
    let emb = Tensor::randn([12, 6], (Kind::Double, Device::Cpu));
    let labels = Tensor::from_slice(&(0..12).map(|i| i % 4).collect::<Vec<i64>>());
    let step = p.forward(&emb, &labels).unwrap();
    let total = f64::try_from(&step.total).unwrap();
    assert!((total - (step.values[0] + 0.5 * step.values[1])).abs() < 1e-12);
    let mined = &step.stats["tuple_miner"];
    assert_eq!(
        step.stats["metric_loss"]["num_pos_pairs"],
        mined["num_pos_pairs"]
    );
    // The miner's pairs, not all pairs, reached the loss.
    assert!(mined["num_pos_pairs"] + mined["num_neg_pairs"] < 132.0);

    let subset = json!({
        "loss_funcs": {"metric_loss": {"ContrastiveLoss": null}},
        "mining_funcs": {"subset_batch_miner": {"BatchHardMiner": null}},
    });
    let p = pipeline::LossPipeline::from_config(&crate::spec::Config(&subset), &ctx(None, None))
        .unwrap();
    let labels = Tensor::from_slice(&[0i64, 0, 1, 1, 2]);
    let (keep, _) = p
        .subset_batch(&emb.narrow(0, 0, 5), &labels)
        .unwrap()
        .unwrap();
    // Samples 0..4 each anchor one triplet; sample 4 (no positive) only appears if it is the
    // hardest negative of someone. The sub-batch is sorted and duplicate-free.
    let keep = Vec::<i64>::try_from(&keep).unwrap();
    assert!(keep.windows(2).all(|w| w[0] < w[1]), "{keep:?}");
    assert_eq!(&keep[..4], &[0, 1, 2, 3]);

    for (bad, msg) in [
        (
            json!({"loss_funcs": {"m": {"ContrastiveLoss": null}}, "mining_funcs": {"miner": {"HDCMiner": null}}}),
            "unknown role",
        ),
        (
            json!({"loss_funcs": {"m": {"ContrastiveLoss": null}}, "mining_funcs": {"tuple_miner": {"HDCMiner": null}, "post_gradient_miner": {"HDCMiner": null}}}),
            "given twice",
        ),
        (
            json!({"loss_funcs": {"m": {"ContrastiveLoss": null}}, "loss_weights": {"x": 1.0}}),
            "names no loss",
        ),
        (
            json!({"loss_funcs": {"m": {"ContrastiveLoss": null}}, "mining_funcs": {"tuple_miner": {"HardMiner": null}}}),
            "valid classes",
        ),
    ] {
        let e = pipeline::LossPipeline::from_config(&crate::spec::Config(&bad), &ctx(None, None))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(e.contains(msg), "{e}");
    }
}

#[test]
fn large_batches_enumerate_triplets_without_the_cube() {
    // 300 samples (27M cells > the dense limit) in 100 classes of 3: every anchor has 2 positives
    // and 297 negatives. The chunked path must keep the dense path's row-major order.
    let labels = Tensor::from_slice(&(0..300).map(|i| i % 100).collect::<Vec<i64>>());
    let (a, p, n) = all_triplets(&labels);
    assert_eq!(a.size()[0], 300 * 2 * 297);
    let (a, p, n) = (
        Vec::<i64>::try_from(&a).unwrap(),
        Vec::<i64>::try_from(&p).unwrap(),
        Vec::<i64>::try_from(&n).unwrap(),
    );
    assert_eq!((a[0], p[0], n[0]), (0, 100, 1));
    assert_eq!((a[296], p[296], n[296]), (0, 100, 299));
    assert_eq!((a[297], p[297], n[297]), (0, 200, 1));
    assert_eq!((a[594], p[594], n[594]), (1, 101, 0));
}
