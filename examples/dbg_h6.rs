use metricbench::optimizer::*;
fn hartmann6(x: &[f64]) -> f64 {
    const A: [[f64; 6]; 4] = [[10.0, 3.0, 17.0, 3.5, 1.7, 8.0],[0.05, 10.0, 17.0, 0.1, 8.0, 14.0],[3.0, 3.5, 1.7, 10.0, 17.0, 8.0],[17.0, 8.0, 0.05, 10.0, 0.1, 14.0]];
    const P: [[f64; 6]; 4] = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],[0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],[0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],[0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]];
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    -(0..4).map(|i| { let s: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum(); ALPHA[i] * (-s).exp() }).sum::<f64>()
}
fn branin(x: &[f64]) -> f64 {
    let (x1, x2) = (x[0], x[1]);
    let pi = std::f64::consts::PI;
    (x2 - 5.1 / (4.0 * pi * pi) * x1 * x1 + 5.0 / pi * x1 - 6.0).powi(2) + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * x1.cos() + 10.0 - 0.397887357729738
}
fn main() {
    let seed: u64 = std::env::args().nth(1).unwrap().parse().unwrap();
    let br = std::env::args().nth(2).is_some();
    let space = if br { SearchSpace::new(vec![Parameter::float("a", -5.0, 10.0), Parameter::float("b", 0.0, 15.0)]).unwrap() } else { SearchSpace::new((0..6).map(|i| Parameter::float(format!("x{i}"), 0.0, 1.0)).collect()).unwrap() };
    let mut opt = Optimizer::new(space, OptimizerConfig { seed, direction: Direction::Minimize, ..Default::default() });
    for i in 0..40 {
        let p = opt.suggest(1, &[]).unwrap();
        let x: Vec<f64> = p[0].iter().map(|v| if let ParamValue::Float(f) = v { *f } else { 0.0 }).collect();
        let y = if br { branin(&x) } else { hartmann6(&x) };
        opt.observe(&p[0], y).unwrap();
        let th: Vec<String> = opt.last_hyperparameters().unwrap_or(&[]).iter().map(|t| format!("{:.2}", t)).collect();
        let xs: Vec<String> = x.iter().map(|v| format!("{:.3}", v)).collect();
        println!("{i:2} y={y:.3e} x=[{}] theta=[{}]", xs.join(","), th.join(","));
    }
}
