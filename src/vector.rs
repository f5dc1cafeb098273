//! Vector math shared by every index: checks, normalisation and SIMD inner products.

use simsimd::SpatialSimilarity;

use crate::error::{Error, Result};

/// Checks that a vector has `dimension` finite components and is not all zeros (cosine is
/// undefined for a zero vector).
///
/// ```
/// use crossmodal::check_vector;
/// assert!(check_vector(&[0.6, 0.8], 2).is_ok());
/// assert!(check_vector(&[0.6], 2).is_err());
/// assert!(check_vector(&[f32::NAN, 1.0], 2).is_err());
/// assert!(check_vector(&[0.0, 0.0], 2).is_err());
/// ```
pub fn check_vector(vector: &[f32], dimension: usize) -> Result<()> {
    if vector.len() != dimension {
        return Err(Error::invalid_input(format!(
            "vector has {} dimensions, expected {dimension}",
            vector.len()
        )));
    }
    if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid_input(format!(
            "vector component {i} is not finite ({})",
            vector[i]
        )));
    }
    if vector.iter().all(|x| *x == 0.0) {
        return Err(Error::invalid_input(
            "vector is all zeros; cosine similarity is undefined",
        ));
    }
    Ok(())
}

/// Returns `vector` scaled to unit length (its cosine with any vector is then a dot product).
///
/// The caller checks the vector first ([`check_vector`]); a zero vector is returned unchanged.
pub fn normalized(vector: &[f32]) -> Vec<f32> {
    let norm = vector
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return vector.to_vec();
    }
    vector
        .iter()
        .map(|x| (f64::from(*x) / norm) as f32)
        .collect()
}

/// Inner product of two equal-length vectors, with SIMD where the CPU has it (via `simsimd`,
/// which picks the kernel at run time).
///
/// ```
/// assert_eq!(crossmodal::vector::dot(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
/// ```
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match f32::dot(a, b) {
        Some(d) => d as f32,
        None => a.iter().zip(b).map(|(x, y)| x * y).sum(),
    }
}

/// Cosine similarity of two unit vectors, clamped to [-1, 1] against rounding.
#[inline]
pub fn cosine_of_unit(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_has_unit_length() {
        let v = normalized(&[3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn dot_matches_scalar_on_odd_lengths() {
        for n in [1usize, 3, 7, 16, 33, 512, 1024] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let scalar: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - scalar).abs() < 1e-3, "n={n}");
        }
    }

    #[test]
    fn cosine_is_clamped() {
        let v = normalized(&[1.0, 1.0, 1.0]);
        let c = cosine_of_unit(&v, &v);
        assert!(c <= 1.0 && c > 0.9999);
    }
}
