//! Owen-scrambled Sobol points (Burley 2020, `sobol_burley` crate).
//!
//! `sobol_burley` supports 2^16 points and 256 dimensions per seed; beyond 256 dimensions the
//! dimension index wraps and a different seed is used for each block of 256, which gives
//! independent (not jointly stratified) blocks — still far better than needing a panic.

const MAX_DIMS: usize = sobol_burley::NUM_DIMENSIONS as usize;
const MAX_POINTS: usize = 1 << 16;

/// Point `index` of the scrambled sequence for `seed`, in `[0, 1)^dim`. Indices past 2^16 wrap
/// onto a fresh seed (the sequence is only used for at most a few thousand points).
pub(crate) fn sobol_point(index: usize, dim: usize, seed: u32) -> Vec<f64> {
    let block_seed = seed.wrapping_add((index / MAX_POINTS) as u32 * 0x68E3_1DA4);
    let i = (index % MAX_POINTS) as u32;
    (0..dim)
        .map(|d| {
            let s = block_seed ^ ((d / MAX_DIMS) as u32).wrapping_mul(0x2C1B_3C6D);
            f64::from(sobol_burley::sample(i, (d % MAX_DIMS) as u32, s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_points_are_stratified() {
        // Any 2^k prefix of a (scrambled) Sobol sequence has one point in each 1/2^k interval of
        // every single coordinate.
        for dim in [1usize, 3, 7] {
            let pts: Vec<Vec<f64>> = (0..16).map(|i| sobol_point(i, dim, 42)).collect();
            for d in 0..dim {
                let mut bins = [0; 16];
                for p in &pts {
                    assert!((0.0..1.0).contains(&p[d]));
                    bins[(p[d] * 16.0) as usize] += 1;
                }
                assert!(bins.iter().all(|&b| b == 1), "dim {d}: {bins:?}");
            }
        }
    }

    #[test]
    fn seeds_differ_and_high_dimensions_work() {
        assert_ne!(sobol_point(0, 4, 1), sobol_point(0, 4, 2));
        assert_eq!(sobol_point(5, 4, 1), sobol_point(5, 4, 1));
        let p = sobol_point(3, 600, 9);
        assert_eq!(p.len(), 600);
        assert!(p.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(sobol_point(70_000, 2, 1)
            .iter()
            .all(|v| (0.0..1.0).contains(v)));
    }
}
