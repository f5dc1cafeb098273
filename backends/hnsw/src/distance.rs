//! [`UnitCosine`]: the graph's distance, `1 - a·b` over unit vectors with a SIMD inner product.

use anndists::dist::Distance;

/// Cosine distance of two **unit** vectors: `1 - a·b`, clamped to `[0, 2]`.
///
/// The inner product is [`crossmodal_core::vector::dot`] (SIMD via simsimd, chosen at run time).
/// Unlike anndists' `DistDot` it never panics: f32 rounding that makes `a·b` slightly exceed 1
/// gives distance 0, and a non-finite product (impossible for checked, normalised vectors) gives
/// the largest distance, 2. hnsw_rs asserts that distances are non-negative, so the clamp matters.
///
/// ```
/// use anndists::dist::Distance;
/// use crossmodal_hnsw::UnitCosine;
/// let a = crossmodal_core::normalized(&[1.0, 1.0]);
/// assert!(UnitCosine.eval(&a, &a) < 1e-6);
/// assert_eq!(UnitCosine.eval(&[1.0, 0.0], &[-1.0, 0.0]), 2.0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitCosine;

impl UnitCosine {
    /// The cosine similarity a distance stands for (`1 - distance`, in `[-1, 1]`).
    #[inline]
    pub fn similarity(distance: f32) -> f32 {
        (1.0 - distance).clamp(-1.0, 1.0)
    }
}

impl Distance<f32> for UnitCosine {
    #[inline]
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        if va.len() != vb.len() {
            // Never happens (every vector is checked against the index dimension); no panic.
            return 2.0;
        }
        let d = 1.0 - crossmodal_core::vector::dot(va, vb);
        if d.is_nan() { 2.0 } else { d.clamp(0.0, 2.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_negative_never_nan() {
        let v = crossmodal_core::normalized(&[0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
        let d = UnitCosine.eval(&v, &v);
        assert!((0.0..1e-6).contains(&d));
        assert_eq!(UnitCosine.eval(&[f32::NAN], &[1.0]), 2.0);
        assert_eq!(UnitCosine.eval(&[1.0, 2.0], &[1.0]), 2.0);
        assert_eq!(UnitCosine.eval(&[2.0], &[2.0]), 0.0);
        assert_eq!(UnitCosine.eval(&[-2.0], &[2.0]), 2.0);
        assert_eq!(UnitCosine::similarity(0.25), 0.75);
    }
}
