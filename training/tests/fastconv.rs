//! The fast CPU convolutions against candle's own ops: forward values and the gradients of
//! x, w and b, on small odd sizes, for each kernel/padding the nets use, with the AVX2/FMA
//! kernels and with the portable ones (each chosen explicitly, so every run tests both).

use candle_core::{Device, Result, Tensor, Var};
use training::fastconv::{
    Kernels, aggregated_block, aggregated_block_reference, aggregated_block_with, conv2d_same_reference,
    conv2d_same_relu_with, conv2d_same_with,
};

const TOL: f32 = 1e-4;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    assert_eq!(a.dims(), b.dims());
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

fn check(name: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    let d = max_abs_diff(a, b)?;
    assert!(d <= TOL, "{name}: max abs diff {d} > {TOL}");
    Ok(())
}

fn rand(shape: &[usize], dev: &Device) -> Result<Tensor> {
    Tensor::randn(0f32, 1f32, shape, dev)
}

/// Runs `f` (fast) and `r` (reference) on the same leaves, loss = Σ out · probe, and
/// compares outputs and the gradients of every leaf.
fn compare<F, R>(name: &str, leaves: &[Tensor], f: F, r: R) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
    R: Fn(&[Tensor]) -> Result<Tensor>,
{
    let vf: Vec<Var> = leaves.iter().map(Var::from_tensor).collect::<Result<_>>()?;
    let vr: Vec<Var> = leaves.iter().map(Var::from_tensor).collect::<Result<_>>()?;
    let tf: Vec<Tensor> = vf.iter().map(|v| v.as_tensor().clone()).collect();
    let tr: Vec<Tensor> = vr.iter().map(|v| v.as_tensor().clone()).collect();
    let of = f(&tf)?;
    let or = r(&tr)?;
    check(&format!("{name} forward"), &of, &or)?;
    let probe = rand(of.dims(), of.device())?;
    let gf = (&of * &probe)?.sum_all()?.backward()?;
    let gr = (&or * &probe)?.sum_all()?.backward()?;
    for (i, (a, b)) in tf.iter().zip(&tr).enumerate() {
        let ga = gf.get(a).expect("fast grad missing");
        let gb = gr.get(b).expect("reference grad missing");
        check(&format!("{name} grad of leaf {i}"), ga, gb)?;
    }
    Ok(())
}

#[test]
fn portable_conv2d_same_matches_candle() -> Result<()> {
    conv_cases(Kernels::Portable)
}

#[test]
fn simd_conv2d_same_matches_candle() -> Result<()> {
    simd_or_refused(conv_cases)
}

/// Runs `cases` on the AVX2/FMA kernels; on a CPU without them, checks that asking for them
/// is an error rather than a silent fallback.
fn simd_or_refused(cases: fn(Kernels) -> Result<()>) -> Result<()> {
    if Kernels::Simd.available() {
        return cases(Kernels::Simd);
    }
    let x = Tensor::zeros((1, 1, 3, 3), candle_core::DType::F32, &Device::Cpu)?;
    let (w, b) = (Tensor::zeros((1, 1, 3, 3), candle_core::DType::F32, &Device::Cpu)?, Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu)?);
    let err = conv2d_same_with(&x, &w, &b, [1, 1, 1, 1], Kernels::Simd).expect_err("SIMD kernels on a CPU without AVX2/FMA");
    assert!(err.to_string().contains("Simd kernels requested"), "{err}");
    Ok(())
}

fn conv_cases(kernels: Kernels) -> Result<()> {
    let dev = Device::Cpu;
    // (kh, kw, pad, cin, cout)
    let cases: &[(usize, usize, [usize; 4], usize, usize)] = &[
        (3, 3, [1, 1, 1, 1], 4, 6),
        (4, 4, [1, 2, 1, 2], 3, 5),
        (5, 5, [2, 2, 2, 2], 5, 3),
        (3, 3, [1, 1, 1, 1], 7, 3), // final 3×3 conv to 3 channels
        (1, 1, [0, 0, 0, 0], 6, 3), // 1×1 output conv
        (3, 3, [0, 0, 0, 0], 3, 2), // no padding
        (2, 3, [0, 1, 2, 0], 3, 4), // asymmetric everything
    ];
    for &(kh, kw, pad, cin, cout) in cases {
        for &(n, h, w) in &[(2, 7, 5), (1, 5, 6), (3, 4, 4)] {
            let leaves = [
                rand(&[n, cin, h, w], &dev)?,
                rand(&[cout, cin, kh, kw], &dev)?,
                rand(&[cout], &dev)?,
            ];
            let name = format!("{kernels:?} conv {kh}x{kw} pad {pad:?} cin {cin} cout {cout} x {n}x{h}x{w}");
            compare(
                &name,
                &leaves,
                |t| conv2d_same_with(&t[0], &t[1], &t[2], pad, kernels),
                |t| conv2d_same_reference(&t[0], &t[1], &t[2], pad),
            )?;
            compare(
                &format!("{name} relu"),
                &leaves,
                |t| conv2d_same_relu_with(&t[0], &t[1], &t[2], pad, kernels),
                |t| conv2d_same_reference(&t[0], &t[1], &t[2], pad)?.relu(),
            )?;
        }
    }
    Ok(())
}

#[test]
fn portable_aggregated_block_matches_candle() -> Result<()> {
    block_cases(Kernels::Portable)
}

#[test]
fn simd_aggregated_block_matches_candle() -> Result<()> {
    simd_or_refused(block_cases)
}

fn block_cases(kernels: Kernels) -> Result<()> {
    let dev = Device::Cpu;
    // Paper block shapes scaled down: 3×3, 4×4, 5×5 branches.
    for &(n, cin, h, w, c3, c4, c5) in &[
        (2, 3, 7, 5, 5, 2, 1),
        (1, 6, 6, 7, 4, 3, 2),
        (3, 2, 5, 5, 1, 1, 1),
    ] {
        let leaves = [
            rand(&[n, cin, h, w], &dev)?,
            rand(&[c3, cin, 3, 3], &dev)?,
            rand(&[c3], &dev)?,
            rand(&[c4, cin, 4, 4], &dev)?,
            rand(&[c4], &dev)?,
            rand(&[c5, cin, 5, 5], &dev)?,
            rand(&[c5], &dev)?,
        ];
        let name = format!("{kernels:?} block cin {cin} ({c3},{c4},{c5}) x {n}x{h}x{w}");
        compare(
            &name,
            &leaves,
            |t| aggregated_block_with(&t[0], [(&t[1], &t[2]), (&t[3], &t[4]), (&t[5], &t[6])], kernels),
            |t| aggregated_block_reference(&t[0], [(&t[1], &t[2]), (&t[3], &t[4]), (&t[5], &t[6])]),
        )?;
    }
    Ok(())
}

#[test]
fn stacked_blocks_match_candle() -> Result<()> {
    // Two blocks in a row (the second one takes the 65-style concatenated output), as in the
    // nets, with a non-contiguous input (a narrowed view).
    let dev = Device::Cpu;
    let (n, h, w) = (2, 6, 5);
    let leaves = [
        rand(&[n, 4, h, w + 2], &dev)?,
        rand(&[3, 3, 3, 3], &dev)?,
        rand(&[3], &dev)?,
        rand(&[2, 3, 4, 4], &dev)?,
        rand(&[2], &dev)?,
        rand(&[1, 3, 5, 5], &dev)?,
        rand(&[1], &dev)?,
        rand(&[3, 6, 3, 3], &dev)?,
        rand(&[3], &dev)?,
        rand(&[2, 6, 4, 4], &dev)?,
        rand(&[2], &dev)?,
        rand(&[1, 6, 5, 5], &dev)?,
        rand(&[1], &dev)?,
    ];
    let net = |t: &[Tensor], fast: bool| -> Result<Tensor> {
        let x = t[0].narrow(1, 1, 3)?.narrow(3, 1, w)?;
        let blk = |x: &Tensor, o: usize| {
            let br = [
                (&t[o], &t[o + 1]),
                (&t[o + 2], &t[o + 3]),
                (&t[o + 4], &t[o + 5]),
            ];
            if fast {
                aggregated_block(x, br)
            } else {
                aggregated_block_reference(x, br)
            }
        };
        let y = blk(&x, 1)?;
        blk(&y, 7)
    };
    compare("two blocks", &leaves, |t| net(t, true), |t| net(t, false))
}

#[test]
fn larger_block_matches_candle() -> Result<()> {
    // Paper channel counts (65 in, 50/10/5 out) on a small odd image, batch 3.
    let dev = Device::Cpu;
    let (n, cin, h, w) = (3, 65, 9, 11);
    let leaves = [
        rand(&[n, cin, h, w], &dev)?,
        (rand(&[50, cin, 3, 3], &dev)? * 0.1)?,
        rand(&[50], &dev)?,
        (rand(&[10, cin, 4, 4], &dev)? * 0.1)?,
        rand(&[10], &dev)?,
        (rand(&[5, cin, 5, 5], &dev)? * 0.1)?,
        rand(&[5], &dev)?,
    ];
    compare(
        "paper-size block",
        &leaves,
        |t| aggregated_block(&t[0], [(&t[1], &t[2]), (&t[3], &t[4]), (&t[5], &t[6])]),
        |t| aggregated_block_reference(&t[0], [(&t[1], &t[2]), (&t[3], &t[4]), (&t[5], &t[6])]),
    )
}
