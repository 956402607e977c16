//! The training benchmark's job (scripts/bench/train) as a plain tch loop: the same MLP trunk,
//! embedder, ContrastiveLoss arithmetic, m-per-class batches and RMSprop, with none of the
//! worker's machinery (no LossPipeline, records, checkpointable optimizers). It is the floor the
//! worker's own loop is compared against. Usage: plain_train [ITERATIONS] [libtorch|ours]
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iterations: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(300);
    let threads: i32 = std::env::var("PLAIN_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    let (classes, per_class, dim) = (100i64, 40i64, 64i64);
    let centers = Tensor::randn([classes, dim], (Kind::Float, Device::Cpu)) * 2.0;
    let labels = Tensor::arange(classes, (Kind::Int64, Device::Cpu))
        .repeat_interleave_self_int(per_class, 0, None);
    let features = centers.index_select(0, &labels)
        + Tensor::randn([classes * per_class, dim], (Kind::Float, Device::Cpu)) * 0.35;
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let trunk = nn::seq()
        .add(nn::linear(&root / "l0", dim, 256, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(&root / "l1", 256, 512, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(&root / "l2", 512, 512, Default::default()))
        .add_fn(|x| x.relu());
    let embedder = nn::linear(&root / "emb", 512, 128, Default::default());
    let mut opt = nn::RmsProp {
        alpha: 0.99,
        eps: 1e-8,
        wd: 0.0,
        momentum: 0.0,
        centered: false,
    }
    .build(&vs, 1e-4)
    .unwrap();
    let mut state = 12345u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut run = |n: usize| {
        for _ in 0..n {
            // 32 classes x 4 samples.
            let mut idx = Vec::with_capacity(128);
            for _ in 0..32 {
                let c = (next() % classes as u64) as i64;
                for _ in 0..4 {
                    idx.push(c * per_class + (next() % per_class as u64) as i64);
                }
            }
            let idx = Tensor::from_slice(&idx);
            let x = features.index_select(0, &idx);
            let y = labels.index_select(0, &idx);
            let emb = embedder.forward(&trunk.forward(&x));
            let emb = &emb
                / emb
                    .norm_scalaropt_dim(2.0, [1i64].as_slice(), true)
                    .clamp_min(1e-12);
            let mat = Tensor::cdist(&emb, &emb, 2.0, None::<i64>);
            let same = y.unsqueeze(1).eq_tensor(&y.unsqueeze(0));
            let eye = Tensor::eye(128, (Kind::Bool, Device::Cpu));
            let pos = same.logical_and(&eye.logical_not());
            let neg = same.logical_not();
            let pl = mat.masked_select(&pos).relu();
            let nl = (mat.masked_select(&neg) * -1.0 + 1.0).relu();
            let avg_nonzero = |l: &Tensor| {
                let count = l.gt(0.0).sum(Kind::Float).clamp_min(1.0);
                l.sum(Kind::Float) / count
            };
            let loss = avg_nonzero(&pl) + avg_nonzero(&nl);
            opt.zero_grad();
            loss.backward();
            opt.step();
            let _ = f64::try_from(&loss).unwrap();
        }
    };
    run(50);
    let start = std::time::Instant::now();
    run(iterations);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "plain_tch iterations_per_second {:.2}",
        iterations as f64 / secs
    );
}
