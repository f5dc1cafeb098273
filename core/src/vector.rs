//! Vector math shared by every index: checks, normalisation and SIMD inner products.

use simsimd::SpatialSimilarity;

use crate::error::{Error, Result};

/// Checks that a vector has `dimension` finite components and is not all zeros (cosine is
/// undefined for a zero vector).
///
/// ```
/// use crossmodal_core::check_vector;
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
    if let Some((i, x)) = vector.iter().enumerate().find(|(_, x)| !x.is_finite()) {
        return Err(Error::invalid_input(format!(
            "vector component {i} is not finite ({x})"
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

/// Scales `vector` to unit length in place (a zero vector is left unchanged).
pub fn normalize_in_place(vector: &mut [f32]) {
    let norm = vector
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in vector.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

/// Inner product of two equal-length vectors, with SIMD where the CPU has it.
///
/// On x86-64 (features checked at run time) a kernel with four independent accumulators runs:
/// 16 lanes each with AVX-512F, 8 with AVX2 and FMA; elsewhere `simsimd` picks its kernel at
/// run time. simsimd's f32 kernels keep one accumulator, so at Marengo's 512 and 1024
/// dimensions each call waits on a chain of dependent FMAs; four chains run about twice as fast
/// in the HNSW walk, where one query computes hundreds of short inner products. The AVX-512
/// kernel halves the instructions again and ends with one masked load instead of a scalar tail
/// (faiss and usearch pick their AVX-512 kernels on such CPUs, so the comparison needs it).
///
/// ```
/// assert_eq!(crossmodal_core::vector::dot(&[1.0, 2.0], &[3.0, 4.0]), 11.0);
/// ```
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { x86::dot_avx512(a, b) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { x86::dot_avx2_fma(a, b) };
        }
    }
    match f32::dot(a, b) {
        Some(d) => d as f32,
        None => a.iter().zip(b).map(|(x, y)| x * y).sum(),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `a · b` over `min(a.len(), b.len())` components: 4 x 8 lanes of FMA, then a scalar tail.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY (all loads): `i + width <= n`, and both slices hold at least `n` floats.
        unsafe {
            while i + 32 <= n {
                acc0 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                    acc1,
                );
                acc2 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 16)),
                    _mm256_loadu_ps(pb.add(i + 16)),
                    acc2,
                );
                acc3 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 24)),
                    _mm256_loadu_ps(pb.add(i + 24)),
                    acc3,
                );
                i += 32;
            }
            while i + 8 <= n {
                acc0 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                i += 8;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        let quad = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let single = _mm_add_ss(pair, _mm_shuffle_ps::<0b01>(pair, pair));
        let total = _mm_cvtss_f32(single);
        total
            + a.iter()
                .zip(b)
                .take(n)
                .skip(i)
                .map(|(x, y)| x * y)
                .sum::<f32>()
    }

    /// `a · b` over `min(a.len(), b.len())` components: 4 x 16 lanes of FMA, then 16 at a
    /// time, then one masked load for the last `n % 16`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut acc2 = _mm512_setzero_ps();
        let mut acc3 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY (all loads): `i + width <= n`, and both slices hold at least `n` floats; the
        // masked load reads only the `n - i < 16` lanes its mask selects.
        unsafe {
            while i + 64 <= n {
                acc0 =
                    _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                    acc1,
                );
                acc2 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 32)),
                    _mm512_loadu_ps(pb.add(i + 32)),
                    acc2,
                );
                acc3 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 48)),
                    _mm512_loadu_ps(pb.add(i + 48)),
                    acc3,
                );
                i += 64;
            }
            while i + 16 <= n {
                acc0 =
                    _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                i += 16;
            }
            if i < n {
                let mask: __mmask16 = (1u16 << (n - i)) - 1;
                acc1 = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(mask, pa.add(i)),
                    _mm512_maskz_loadu_ps(mask, pb.add(i)),
                    acc1,
                );
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(acc0, acc1),
            _mm512_add_ps(acc2, acc3),
        ))
    }

    /// `a · b` of i8 codes over `min(a.len(), b.len())` components, 64 per step: each half
    /// widened to i16 and multiplied-added in pairs into 16 i32 lanes, then a scalar tail.
    ///
    /// # Safety
    /// The CPU must support AVX-512BW.
    #[target_feature(enable = "avx512bw")]
    pub unsafe fn dot_i8_avx512(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_si512();
        let mut acc1 = _mm512_setzero_si512();
        let mut i = 0;
        // SAFETY (all loads): `i + 64 <= n`, and both slices hold at least `n` codes.
        unsafe {
            while i + 64 <= n {
                let a_lo = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pa.add(i).cast()));
                let a_hi = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pa.add(i + 32).cast()));
                let b_lo = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pb.add(i).cast()));
                let b_hi = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pb.add(i + 32).cast()));
                acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(a_lo, b_lo));
                acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(a_hi, b_hi));
                i += 64;
            }
        }
        let total = _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
        total
            + a.iter()
                .zip(b)
                .take(n)
                .skip(i)
                .map(|(x, y)| i32::from(*x) * i32::from(*y))
                .sum::<i32>()
    }

    /// `a · b` of i8 codes over `min(a.len(), b.len())` components: 32 per step, widened to
    /// i16 and multiplied-added in pairs into i32 lanes (127 * 127 * 2 fits in an i32 lane with
    /// room to spare), then a scalar tail.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        let mut i = 0;
        // SAFETY (all loads): `i + 32 <= n`, and both slices hold at least `n` codes.
        unsafe {
            while i + 32 <= n {
                let va = _mm256_loadu_si256(pa.add(i).cast());
                let vb = _mm256_loadu_si256(pb.add(i).cast());
                let a_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(va));
                let a_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(va));
                let b_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(vb));
                let b_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(vb));
                acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(a_lo, b_lo));
                acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(a_hi, b_hi));
                i += 32;
            }
        }
        let sum = _mm256_add_epi32(acc0, acc1);
        let quad = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256::<1>(sum),
        );
        let pair = _mm_add_epi32(quad, _mm_shuffle_epi32::<0b01_00_11_10>(quad));
        let single = _mm_add_epi32(pair, _mm_shuffle_epi32::<0b10_11_00_01>(pair));
        let total = _mm_cvtsi128_si32(single);
        total
            + a.iter()
                .zip(b)
                .take(n)
                .skip(i)
                .map(|(x, y)| i32::from(*x) * i32::from(*y))
                .sum::<i32>()
    }
}

/// Quantises a vector to signed 8-bit codes with one scale per vector (`x ≈ scale * code`,
/// codes in `-127..=127`); returns the scale. Symmetric per-vector scaling needs no training
/// data and clips nothing: the largest component maps to ±127.
///
/// ```
/// use crossmodal_core::vector::{dot_i8, quantize_i8};
/// let a = crossmodal_core::normalized(&[0.1, -0.7, 0.2, 0.4]);
/// let mut code = Vec::new();
/// let scale = quantize_i8(&a, &mut code);
/// assert_eq!(code.iter().map(|c| c.unsigned_abs()).max(), Some(127));
/// let approx = scale * scale * dot_i8(&code, &code) as f32;
/// assert!((approx - 1.0).abs() < 0.01);
/// ```
pub fn quantize_i8(v: &[f32], out: &mut Vec<i8>) -> f32 {
    out.clear();
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        out.resize(v.len(), 0);
        return 0.0;
    }
    let scale = max / 127.0;
    out.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// Integer inner product of two equal-length code vectors (AVX-512BW or AVX2 where the CPU
/// has it).
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has AVX-512BW (checked just above).
            return unsafe { x86::dot_i8_avx512(a, b) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { x86::dot_i8_avx2(a, b) };
        }
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum()
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

    type F32Kernel = (&'static str, fn(&[f32], &[f32]) -> f32);
    type I8Kernel = (&'static str, fn(&[i8], &[i8]) -> i32);

    /// Every f32 kernel this CPU can run, by name (the dispatching `dot` first).
    fn f32_kernels() -> Vec<F32Kernel> {
        #[allow(unused_mut)]
        let mut kernels: Vec<F32Kernel> = vec![("dot", dot)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                kernels.push(("avx2", |a, b| unsafe { x86::dot_avx2_fma(a, b) }));
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                kernels.push(("avx512", |a, b| unsafe { x86::dot_avx512(a, b) }));
            }
        }
        kernels
    }

    /// Every i8 kernel this CPU can run, by name (the dispatching `dot_i8` first).
    fn i8_kernels() -> Vec<I8Kernel> {
        #[allow(unused_mut)]
        let mut kernels: Vec<I8Kernel> = vec![("dot_i8", dot_i8)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                kernels.push(("avx2", |a, b| unsafe { x86::dot_i8_avx2(a, b) }));
            }
            if std::arch::is_x86_feature_detected!("avx512bw") {
                // SAFETY: the CPU has AVX-512BW (checked just above).
                kernels.push(("avx512", |a, b| unsafe { x86::dot_i8_avx512(a, b) }));
            }
        }
        kernels
    }

    #[test]
    fn dot_matches_scalar_on_odd_lengths() {
        // Every tail shape of the 64-, 32-, 16- and 8-wide loops and the masked tail.
        for n in [
            0usize, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 47, 48, 63, 64, 65, 79, 100, 384,
            512, 1023, 1024,
        ] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let exact: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            for (name, kernel) in f32_kernels() {
                let got = f64::from(kernel(&a, &b));
                assert!((got - exact).abs() < 1e-3, "{name} n={n}: {got} vs {exact}");
            }
        }
        // A slice longer than the other: a kernel reads only the common prefix (`dot` itself
        // asserts equal lengths in debug builds).
        for (name, kernel) in f32_kernels().into_iter().skip(1) {
            assert_eq!(kernel(&[1.0; 70], &[2.0; 65]), 130.0, "{name}");
        }
    }

    #[test]
    fn dot_i8_matches_scalar_on_every_tail() {
        for n in [
            0usize, 1, 31, 32, 33, 63, 64, 65, 96, 100, 127, 384, 512, 1024,
        ] {
            let a: Vec<i8> = (0..n)
                .map(|i| ((i * 37 % 255) as i32 - 127) as i8)
                .collect();
            let b: Vec<i8> = (0..n)
                .map(|i| ((i * 11 % 255) as i32 - 127) as i8)
                .collect();
            let exact: i32 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| i32::from(*x) * i32::from(*y))
                .sum();
            for (name, kernel) in i8_kernels() {
                assert_eq!(kernel(&a, &b), exact, "{name} n={n}");
            }
        }
        let full = vec![127i8; 1024];
        let neg = vec![-127i8; 1024];
        for (name, kernel) in i8_kernels() {
            assert_eq!(kernel(&full, &full), 127 * 127 * 1024, "{name}");
            assert_eq!(kernel(&full, &neg), -127 * 127 * 1024, "{name}");
        }
    }

    #[test]
    fn cosine_is_clamped() {
        let v = normalized(&[1.0, 1.0, 1.0]);
        let c = cosine_of_unit(&v, &v);
        assert!(c <= 1.0 && c > 0.9999);
    }
}
