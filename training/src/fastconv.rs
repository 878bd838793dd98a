//! Fast CPU convolutions for training the paper nets in candle.
//!
//! Public API (stable):
//! * [`conv2d_same`]: stride-1 convolution with explicit zero padding, plus bias
//!   ([`conv2d_same_relu`]: the same with a fused ReLU).
//! * [`aggregated_block`]: the nets' building block, `relu(concat(conv3x3, conv4x4, conv5x5))`.
//!
//! Both run as candle custom ops on the CPU (forward and backward; f32), and fall back to plain
//! candle ops ([`conv2d_same_reference`], [`aggregated_block_reference`]) on other devices or
//! dtypes, or everywhere after [`set_reference_mode`]`(true)`.
//!
//! # Method: shifted products on the padded grid, no im2col
//!
//! Each image is zero-padded into a buffer `xp` of `Cin × Hp × Wp`. The output is computed on
//! the padded grid: output column `q = oy·Wp + ox` (the columns with `ox ≥ Wout` are computed
//! too and thrown away: `Wp/Wout` extra work, 68/64 for 5×5 kernels at 64 px). Then the input
//! that kernel tap `(ky, kx)` needs for all outputs is the *contiguous* range
//! `xp[ci, q + ky·Wp + kx]`, and
//!
//! * forward: `out[co, q] = Σ_(ci, tap) W[co, ci, tap] · xp[ci, q + off(tap)]`;
//! * input gradient (same form, from the zero-padded output gradient `gp`):
//!   `dxp[ci, p] = Σ_(co, tap) W[co, ci, tap] · gp[co, p − off(tap)]`;
//! * weight gradient: `dW[co, ci, tap] = Σ_q g[co, q] · xp[ci, q + off(tap)]`.
//!
//! The first two run in an AVX2/FMA kernel (6 output rows × 16 columns in registers, the whole
//! sum over (channel, tap) in one go, weights pre-packed; portable loops where AVX2 is
//! missing). The weight gradient is a GEMM (`gemm` crate) per kernel row: with the input
//! stored channels-last, the taps of one kernel row and all channels form one contiguous
//! operand (`K = Q`, `M = KW·Cin`, `N = Cout`), with no packing copy.
//!
//! The aggregated block runs as one 5×5 convolution whose output channels are grouped by the
//! kernel support of their branch: the 3×3 channels read only the central 3×3 taps, the 4×4
//! channels their 4×4 taps, the 5×5 channels all 25. So the arithmetic is exactly that of
//! the three separate convolutions, with one padded input, and bias + ReLU fused into the
//! output copy (the backward pass applies the ReLU mask as it copies the gradient in).
//!
//! Images are spread over threads (rayon: one contiguous chunk of the batch per thread); with
//! fewer images than threads, the column blocks of each product run in parallel instead.
//! Thread count: rayon's (`RAYON_NUM_THREADS`, default: the number of cores).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, CustomOp3, D, DType, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Which inner kernels the fast path runs: the AVX2/FMA ones or the portable loops. Both
/// compute the same sums; the choice is passed down explicitly, so both can be exercised
/// side by side (the plain functions take [`Kernels::detect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// AVX2/FMA kernels (x86_64 CPUs that have both).
    Simd,
    /// Portable loops (forward, input gradient) and the `gemm` crate (weights).
    Portable,
}

impl Kernels {
    /// The fastest kernels this CPU runs.
    pub fn detect() -> Self {
        if Kernels::Simd.available() { Kernels::Simd } else { Kernels::Portable }
    }

    /// Whether this CPU can run these kernels.
    pub fn available(self) -> bool {
        match self {
            Kernels::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernels::Simd => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            Kernels::Simd => false,
        }
    }
}

/// Stride-1 convolution with explicit zero padding `[top, bottom, left, right]` plus bias.
///
/// `x`: [N, Cin, H, W] f32, `w`: [Cout, Cin, KH, KW], `b`: [Cout].
/// Output: [N, Cout, H+top+bottom-KH+1, W+left+right-KW+1].
pub fn conv2d_same(x: &Tensor, w: &Tensor, b: &Tensor, pad: [usize; 4]) -> Result<Tensor> {
    conv2d_same_with(x, w, b, pad, Kernels::detect())
}

/// [`conv2d_same`] followed by ReLU, fused (one pass over the output).
pub fn conv2d_same_relu(x: &Tensor, w: &Tensor, b: &Tensor, pad: [usize; 4]) -> Result<Tensor> {
    conv2d_same_relu_with(x, w, b, pad, Kernels::detect())
}

/// [`conv2d_same`] on the given kernels (an error if the CPU lacks them).
pub fn conv2d_same_with(x: &Tensor, w: &Tensor, b: &Tensor, pad: [usize; 4], kernels: Kernels) -> Result<Tensor> {
    single_conv(x, w, b, pad, false, kernels)
}

/// [`conv2d_same_relu`] on the given kernels (an error if the CPU lacks them).
pub fn conv2d_same_relu_with(x: &Tensor, w: &Tensor, b: &Tensor, pad: [usize; 4], kernels: Kernels) -> Result<Tensor> {
    single_conv(x, w, b, pad, true, kernels)
}

fn single_conv(x: &Tensor, w: &Tensor, b: &Tensor, pad: [usize; 4], relu: bool, kernels: Kernels) -> Result<Tensor> {
    if !use_fast(x, w, b) {
        let y = conv2d_same_reference(x, w, b, pad)?;
        return if relu { y.relu() } else { Ok(y) };
    }
    let (cout, _cin, kh, kw) = w.dims4()?;
    let groups = vec![Group { co: (0, cout), ky: (0, kh), kx: (0, kw) }];
    apply_conv(x, w, b, ConvSpec { pad, groups, relu, kernels })
}

/// The aggregated block of the paper nets: `relu(concat(conv_a, conv_b, conv_c))` on the
/// channel dim, each branch with Keras-'same' padding ([`same_pad`]): 3×3 → [1,1,1,1],
/// 4×4 → [1,2,1,2], 5×5 → [2,2,2,2]. Branch weights `[Cout_i, Cin, K_i, K_i]`, biases
/// `[Cout_i]`; output `[N, ΣCout_i, H, W]` (50 + 10 + 5 = 65 channels in the paper).
pub fn aggregated_block(x: &Tensor, branches: [(&Tensor, &Tensor); 3]) -> Result<Tensor> {
    aggregated_block_with(x, branches, Kernels::detect())
}

/// [`aggregated_block`] on the given kernels (an error if the CPU lacks them).
pub fn aggregated_block_with(x: &Tensor, branches: [(&Tensor, &Tensor); 3], kernels: Kernels) -> Result<Tensor> {
    if !branches.iter().all(|(w, b)| use_fast(x, w, b)) {
        return aggregated_block_reference(x, branches);
    }
    // Embed every branch kernel in the largest one, aligned on the tap offsets.
    let mut kh_max = 0;
    let mut kw_max = 0;
    for (w, _) in branches.iter() {
        let (_, _, kh, kw) = w.dims4()?;
        kh_max = kh_max.max(kh);
        kw_max = kw_max.max(kw);
    }
    let [pt, pb, pl, pr] = [
        (kh_max - 1) / 2,
        kh_max - 1 - (kh_max - 1) / 2,
        (kw_max - 1) / 2,
        kw_max - 1 - (kw_max - 1) / 2,
    ];
    let mut ws = Vec::with_capacity(3);
    let mut bs = Vec::with_capacity(3);
    let mut groups = Vec::with_capacity(3);
    let mut co = 0;
    for (w, b) in branches.iter() {
        let (cout, _, kh, kw) = w.dims4()?;
        let [t, bo, l, r] = [
            (kh - 1) / 2,
            kh - 1 - (kh - 1) / 2,
            (kw - 1) / 2,
            kw - 1 - (kw - 1) / 2,
        ];
        let (y0, y1, x0, x1) = (pt - t, pb - bo, pl - l, pr - r);
        let mut w = (*w).clone();
        if y0 > 0 || y1 > 0 {
            w = w.pad_with_zeros(2, y0, y1)?;
        }
        if x0 > 0 || x1 > 0 {
            w = w.pad_with_zeros(3, x0, x1)?;
        }
        ws.push(w);
        bs.push((*b).clone());
        groups.push(Group {
            co: (co, co + cout),
            ky: (y0, y0 + kh),
            kx: (x0, x0 + kw),
        });
        co += cout;
    }
    let w = Tensor::cat(&ws, 0)?;
    let b = Tensor::cat(&bs, 0)?;
    apply_conv(
        x,
        &w,
        &b,
        ConvSpec {
            pad: [pt, pb, pl, pr],
            groups,
            relu: true,
            kernels,
        },
    )
}

/// Padding giving Keras-style 'same' output for kernel size `k` (the extra row/col after).
pub fn same_pad(k: usize) -> [usize; 4] {
    let before = (k - 1) / 2;
    let after = k - 1 - before;
    [before, after, before, after]
}

/// Plain candle implementation of [`conv2d_same`] (reference for tests and benchmarks).
pub fn conv2d_same_reference(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    pad: [usize; 4],
) -> Result<Tensor> {
    let [t, bo, l, r] = pad;
    let x = if t > 0 || bo > 0 {
        x.pad_with_zeros(2, t, bo)?
    } else {
        x.clone()
    };
    let x = if l > 0 || r > 0 {
        x.pad_with_zeros(3, l, r)?
    } else {
        x
    };
    let y = x.conv2d(w, 0, 1, 1, 1)?;
    let cout = w.dim(0)?;
    y.broadcast_add(&b.reshape((1, cout, 1, 1))?)
}

/// Plain candle implementation of [`aggregated_block`].
pub fn aggregated_block_reference(x: &Tensor, branches: [(&Tensor, &Tensor); 3]) -> Result<Tensor> {
    let mut outs = Vec::with_capacity(3);
    for (w, b) in branches {
        let kh = w.dim(D::Minus2)?;
        let kw = w.dim(D::Minus1)?;
        let [t, bo, _, _] = same_pad(kh);
        let [_, _, l, r] = same_pad(kw);
        outs.push(conv2d_same_reference(x, w, b, [t, bo, l, r])?);
    }
    Tensor::cat(&outs, 1)?.relu()
}

// ---------------------------------------------------------------------------------------------

static REFERENCE_MODE: AtomicBool = AtomicBool::new(false);

/// Makes [`conv2d_same`], [`conv2d_same_relu`] and [`aggregated_block`] run the plain candle
/// implementations (process-wide), e.g. to benchmark or cross-check the fast path.
pub fn set_reference_mode(on: bool) {
    REFERENCE_MODE.store(on, Ordering::Relaxed);
}

/// Whether [`set_reference_mode`] is on.
pub fn reference_mode() -> bool {
    REFERENCE_MODE.load(Ordering::Relaxed)
}

fn use_fast(x: &Tensor, w: &Tensor, b: &Tensor) -> bool {
    !reference_mode()
        && x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && b.dtype() == DType::F32
        && x.rank() == 4
        && w.rank() == 4
}

fn apply_conv(x: &Tensor, w: &Tensor, b: &Tensor, spec: ConvSpec) -> Result<Tensor> {
    if !spec.kernels.available() {
        candle_core::bail!("fastconv: {:?} kernels requested on a CPU without them", spec.kernels);
    }
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    let b = b.contiguous()?;
    x.apply_op3(&w, &b, ConvOp { spec, pass: Pass::Forward })
}

/// A set of output channels `co.0..co.1` whose kernels are nonzero only on taps
/// `ky.0..ky.1 × kx.0..kx.1`.
#[derive(Clone, Debug)]
struct Group {
    co: (usize, usize),
    ky: (usize, usize),
    kx: (usize, usize),
}

#[derive(Clone, Debug)]
struct ConvSpec {
    pad: [usize; 4],
    groups: Vec<Group>,
    relu: bool,
    kernels: Kernels,
}

impl ConvSpec {
    fn check(&self, g: &Geom) -> Result<()> {
        for gr in &self.groups {
            if gr.co.1 > g.cout || gr.ky.1 > g.kh || gr.kx.1 > g.kw || gr.co.0 > gr.co.1 {
                candle_core::bail!(
                    "fastconv: group {gr:?} outside weight {}x{}x{}",
                    g.cout,
                    g.kh,
                    g.kw
                );
            }
        }
        Ok(())
    }

    /// The groups in channel order, without empty ones.
    fn sorted_groups(&self) -> Vec<Group> {
        let mut groups: Vec<Group> = self
            .groups
            .iter()
            .filter(|g| g.co.0 < g.co.1 && g.ky.0 < g.ky.1 && g.kx.0 < g.kx.1)
            .cloned()
            .collect();
        groups.sort_by_key(|gr| gr.co.0);
        groups
    }
}

#[derive(Clone, Copy, Debug)]
struct Geom {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    kh: usize,
    kw: usize,
    hp: usize,
    wp: usize,
    ho: usize,
    wo: usize,
    /// Output columns computed on the padded grid: `(ho - 1) * wp + wo`.
    q: usize,
}

impl Geom {
    fn new(xs: &[usize], ws: &[usize], pad: [usize; 4]) -> Result<Self> {
        let (&[n, cin, h, w], &[cout, cin2, kh, kw]) = (xs, ws) else {
            candle_core::bail!("fastconv: expected 4-d x and w, got {xs:?} {ws:?}")
        };
        if cin != cin2 {
            candle_core::bail!("fastconv: x has {cin} channels, w expects {cin2}");
        }
        let hp = h + pad[0] + pad[1];
        let wp = w + pad[2] + pad[3];
        if hp < kh || wp < kw || kh == 0 || kw == 0 {
            candle_core::bail!("fastconv: kernel {kh}x{kw} larger than padded input {hp}x{wp}");
        }
        let ho = hp - kh + 1;
        let wo = wp - kw + 1;
        Ok(Self {
            n,
            cin,
            h,
            w,
            cout,
            kh,
            kw,
            hp,
            wp,
            ho,
            wo,
            q: (ho - 1) * wp + wo,
        })
    }
    fn plane(&self) -> usize {
        self.hp * self.wp
    }
    /// Largest tap offset on the padded grid.
    fn max_off(&self) -> usize {
        (self.kh - 1) * self.wp + self.kw - 1
    }
}

type Operands<'a> = (&'a [f32], &'a [f32], &'a [f32], Geom);

/// The three operands of an op as f32 slices (`x`, `w`, then `third`), and the geometry of
/// the convolution, checked against the op's groups.
fn operands<'a>(
    spec: &ConvSpec,
    (s1, l1): (&'a CpuStorage, &Layout),
    (s2, l2): (&'a CpuStorage, &Layout),
    (s3, l3, third): (&'a CpuStorage, &Layout, &str),
) -> Result<Operands<'a>> {
    let g = Geom::new(l1.dims(), l2.dims(), spec.pad)?;
    spec.check(&g)?;
    Ok((slice(s1, l1, "x")?, slice(s2, l2, "w")?, slice(s3, l3, third)?, g))
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("fastconv: {what} is not contiguous"),
    }
}

/// Per-thread scratch buffers, reused across calls.
#[derive(Default)]
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A zeroed vector of `n` values for an output. `vec![0.0; n]` asks the allocator for zeroed
/// memory (`calloc`): large blocks come as fresh zero pages from the kernel, first touched
/// by the threads that fill them, so this costs no pass over the memory here, and no value
/// is ever read uninitialised.
fn alloc_output(n: usize) -> Vec<f32> {
    vec![0.0; n]
}

/// Runs `f` with this thread's scratch buffers (fresh ones if they are in use: a nested call
/// through rayon work stealing).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

fn resize(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Threads to spread images over, and the parallelism for each GEMM.
fn plan_threads(n: usize) -> (usize, gemm::Parallelism) {
    let t = rayon::current_num_threads().max(1);
    if t == 1 {
        (1, gemm::Parallelism::None)
    } else if n >= t {
        (n.div_ceil(n.div_ceil(t)), gemm::Parallelism::None)
    } else {
        (1, gemm::Parallelism::Rayon(t))
    }
}

/// Runs `work(first_image, chunk, gemm_parallelism, parallel_inside)` on `out` split into
/// per-thread chunks of whole images (`per_img` values each), in parallel; collects the
/// results. With fewer images than threads there is one chunk and the work inside it should
/// run in parallel (`gemm_parallelism`, `parallel_inside`).
fn for_image_chunks<R: Send>(
    n: usize,
    per_img: usize,
    out: &mut [f32],
    work: impl Fn(usize, &mut [f32], gemm::Parallelism, bool) -> R + Sync,
) -> Vec<R> {
    let (threads, par) = plan_threads(n);
    let per = n.div_ceil(threads).max(1);
    if n == 0 || per_img == 0 {
        return vec![];
    }
    if threads > 1 {
        out.par_chunks_mut(per * per_img)
            .enumerate()
            .map(|(t, c)| work(t * per, c, par, false))
            .collect()
    } else {
        // One chunk: the products inside run in parallel instead (if there are threads).
        let inner = !matches!(par, gemm::Parallelism::None);
        vec![work(0, out, par, inner)]
    }
}

/// Zero-pad image `x` ([cin, h, w]) into `xp` ([cin, hp, wp] then `slack` zeros).
fn pad_into(g: &Geom, pad: [usize; 4], x: &[f32], xp: &mut [f32], slack: usize) {
    let plane = g.plane();
    for c in 0..g.cin {
        let dst = &mut xp[c * plane..][..plane];
        dst[..pad[0] * g.wp].fill(0.0);
        for y in 0..g.h {
            let row = &mut dst[(y + pad[0]) * g.wp..][..g.wp];
            row[..pad[2]].fill(0.0);
            row[pad[2]..pad[2] + g.w].copy_from_slice(&x[(c * g.h + y) * g.w..][..g.w]);
            row[pad[2] + g.w..].fill(0.0);
        }
        dst[(pad[0] + g.h) * g.wp..].fill(0.0);
    }
    xp[g.cin * plane..][..slack].fill(0.0);
}

/// Zero-pad image `x` ([cin, h, w]) into `xpt`, channels-last: `xpt[(py * wp + px) * cin + c]`,
/// then 8 zeros.
fn pad_into_t(g: &Geom, pad: [usize; 4], x: &[f32], xpt: &mut [f32]) {
    let c = g.cin;
    xpt[..pad[0] * g.wp * c].fill(0.0);
    for y in 0..g.h {
        let row = &mut xpt[(y + pad[0]) * g.wp * c..][..g.wp * c];
        row[..pad[2] * c].fill(0.0);
        // Transpose [cin][w] → [w][cin] by blocks of 8 pixels.
        for x0 in (0..g.w).step_by(8) {
            let nx = 8.min(g.w - x0);
            for ci in 0..c {
                let src = &x[(ci * g.h + y) * g.w + x0..][..nx];
                for (i, &v) in src.iter().enumerate() {
                    row[(pad[2] + x0 + i) * c + ci] = v;
                }
            }
        }
        row[(pad[2] + g.w) * c..].fill(0.0);
    }
    xpt[(pad[0] + g.h) * g.wp * c..g.plane() * c + 8].fill(0.0);
}

/// Copy the output gradient of one image ([cout, ho, wo]), times the ReLU mask if any, into
/// `gp` ([cout][ustride]): value of output `(oy, ox)` at column `s + oy * wp + ox`, zeros
/// elsewhere (the thrown-away columns and the margins). Adds each channel's sum to `sums`.
fn grad_into(
    g: &Geom,
    gr: &[f32],
    mask: Option<&[f32]>,
    gp: &mut [f32],
    ustride: usize,
    s: usize,
    sums: &mut [f64],
) {
    for co in 0..g.cout {
        let dst = &mut gp[co * ustride..][..ustride];
        dst[..s].fill(0.0);
        let mut sum = 0f64;
        for oy in 0..g.ho {
            let row = &mut dst[s + oy * g.wp..];
            let src = &gr[(co * g.ho + oy) * g.wo..][..g.wo];
            match mask {
                Some(m) => {
                    let m = &m[(co * g.ho + oy) * g.wo..][..g.wo];
                    for ((d, &v), &m) in row[..g.wo].iter_mut().zip(src).zip(m) {
                        *d = if m > 0.0 { v } else { 0.0 };
                    }
                }
                None => row[..g.wo].copy_from_slice(src),
            }
            sum += row[..g.wo].iter().sum::<f32>() as f64;
            if oy + 1 < g.ho {
                row[g.wo..g.wp].fill(0.0);
            }
        }
        dst[s + g.q..].fill(0.0);
        sums[co] += sum;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_cs: usize,
    dst_rs: usize,
    lhs: *const f32,
    lhs_cs: usize,
    lhs_rs: usize,
    rhs: *const f32,
    rhs_cs: usize,
    rhs_rs: usize,
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            true,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

// ----- shifted products ------------------------------------------------------------------------
//
// Both the forward pass and the input gradient are "shifted products":
//     out[r, c] = Σ_k  panel[k][r] · inp[offs[k] + c]      (c = 0 .. ncols)
// with, for the forward pass, r = output channel and k = (input channel, tap), and for the
// input gradient, r = input channel and k = (output channel, tap) read from the padded
// output gradient. Rows are split in tiles of at most 6 that share their list of k.

/// Rows `row0 .. row0 + nr` reading `offs[k0..k1]` with weights `panels[w0..]` ([k][nr]).
#[derive(Clone, Copy, Debug)]
struct Tile {
    row0: usize,
    nr: usize,
    k0: usize,
    k1: usize,
    w0: usize,
}

#[derive(Default, Debug)]
struct ShiftPlan {
    tiles: Vec<Tile>,
    offs: Vec<usize>,
    panels: Vec<f32>,
}

const TILE_ROWS: usize = 6;
/// Columns per kernel call (two AVX vectors).
const TILE_COLS: usize = 16;
/// Columns per block: every row tile runs over one block before the next block.
const BLOCK_COLS: usize = 64;

impl ShiftPlan {
    /// Adds rows `row0..row1`, all reading the k list `ks` (offsets), with weight
    /// `weight(row, k_index)`.
    fn add_rows(
        &mut self,
        row0: usize,
        row1: usize,
        ks: &[usize],
        weight: impl Fn(usize, usize) -> f32,
    ) {
        let k0 = self.offs.len();
        self.offs.extend_from_slice(ks);
        let k1 = self.offs.len();
        let mut r = row0;
        while r < row1 {
            let nr = TILE_ROWS.min(row1 - r);
            let w0 = self.panels.len();
            for k in 0..ks.len() {
                for i in 0..nr {
                    self.panels.push(weight(r + i, k));
                }
            }
            self.tiles.push(Tile {
                row0: r,
                nr,
                k0,
                k1,
                w0,
            });
            r += nr;
        }
    }

    /// Forward pass: rows = output channels; input = padded image [cin][plane].
    fn forward(spec: &ConvSpec, g: &Geom, w: &[f32]) -> Self {
        let mut p = ShiftPlan::default();
        let kk = g.kh * g.kw;
        for gr in spec.sorted_groups() {
            let mut ks = Vec::new();
            let mut idx = Vec::new();
            for ci in 0..g.cin {
                for ky in gr.ky.0..gr.ky.1 {
                    for kx in gr.kx.0..gr.kx.1 {
                        ks.push(ci * g.plane() + ky * g.wp + kx);
                        idx.push(ci * kk + ky * g.kw + kx);
                    }
                }
            }
            p.add_rows(gr.co.0, gr.co.1, &ks, |co, k| w[co * g.cin * kk + idx[k]]);
        }
        p
    }

    /// Input gradient: rows = input channels; input = padded output gradient [cout][ustride]
    /// with output `q` at column `s + q`; output column `c` = padded-input position `p0 + c`.
    fn input_grad(
        spec: &ConvSpec,
        g: &Geom,
        w: &[f32],
        ustride: usize,
        s: usize,
        p0: usize,
    ) -> Self {
        let mut p = ShiftPlan::default();
        let kk = g.kh * g.kw;
        let mut ks = Vec::new();
        let mut idx = Vec::new();
        for gr in spec.sorted_groups() {
            for co in gr.co.0..gr.co.1 {
                for ky in gr.ky.0..gr.ky.1 {
                    for kx in gr.kx.0..gr.kx.1 {
                        // dxp[ci, p] += W[co, ci, tap] · g[co, p − off(tap)]
                        ks.push(co * ustride + s + p0 - (ky * g.wp + kx));
                        idx.push((co * g.cin, ky * g.kw + kx));
                    }
                }
            }
        }
        p.add_rows(0, g.cin, &ks, |ci, k| w[(idx[k].0 + ci) * kk + idx[k].1]);
        p
    }

    /// `out[r][c] = Σ_k panel · inp[offs[k] + c]` for `c < ncols` rounded up to
    /// [`TILE_COLS`] (rows of `out` are `out_rs` apart; `inp` must be readable that far).
    ///
    /// # Safety
    /// `inp` must be valid for reads at `offs[k] + c` for every k and every `c` below `ncols`
    /// rounded up to `TILE_COLS`; `out` for writes at `r * out_rs + c` likewise.
    unsafe fn run(
        &self,
        inp: *const f32,
        out: *mut f32,
        out_rs: usize,
        ncols: usize,
        simd: bool,
        parallel: bool,
    ) {
        let ncols = ncols.next_multiple_of(TILE_COLS);
        let nblocks = ncols.div_ceil(BLOCK_COLS);
        // Raw pointers as integers so the closure is Sync; blocks write disjoint columns.
        let (inp, out) = (inp as usize, out as usize);
        let block = |b: usize| {
            let cb = b * BLOCK_COLS;
            let ce = (cb + BLOCK_COLS).min(ncols);
            for t in &self.tiles {
                for c0 in (cb..ce).step_by(TILE_COLS) {
                    unsafe {
                        let o = (out as *mut f32).add(t.row0 * out_rs + c0);
                        let i = (inp as *const f32).add(c0);
                        self.tile(t, i, o, out_rs, simd);
                    }
                }
            }
        };
        if parallel {
            (0..nblocks).into_par_iter().for_each(block);
        } else {
            (0..nblocks).for_each(block);
        }
    }

    #[inline]
    unsafe fn tile(&self, t: &Tile, i: *const f32, o: *mut f32, out_rs: usize, simd: bool) {
        let w = unsafe { self.panels.as_ptr().add(t.w0) };
        let offs = &self.offs[t.k0..t.k1];
        #[cfg(target_arch = "x86_64")]
        if simd {
            unsafe {
                match t.nr {
                    1 => avx::tile::<1>(w, offs, i, o, out_rs),
                    2 => avx::tile::<2>(w, offs, i, o, out_rs),
                    3 => avx::tile::<3>(w, offs, i, o, out_rs),
                    4 => avx::tile::<4>(w, offs, i, o, out_rs),
                    5 => avx::tile::<5>(w, offs, i, o, out_rs),
                    _ => avx::tile::<6>(w, offs, i, o, out_rs),
                }
            }
            return;
        }
        let _ = simd;
        unsafe { tile_scalar(t.nr, w, offs, i, o, out_rs) };
    }
}

/// Portable version of the tile kernel.
unsafe fn tile_scalar(
    nr: usize,
    w: *const f32,
    offs: &[usize],
    inp: *const f32,
    out: *mut f32,
    out_rs: usize,
) {
    let mut acc = [[0f32; TILE_COLS]; TILE_ROWS];
    for (k, &o) in offs.iter().enumerate() {
        let a = unsafe { std::slice::from_raw_parts(inp.add(o), TILE_COLS) };
        for r in 0..nr {
            let b = unsafe { *w.add(k * nr + r) };
            for (acc, &a) in acc[r].iter_mut().zip(a) {
                *acc += a * b;
            }
        }
    }
    for (r, acc) in acc.iter().enumerate().take(nr) {
        unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), out.add(r * out_rs), TILE_COLS) };
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// `out[r][0..16] = Σ_k w[k·NR + r] · inp[offs[k] + 0..16]` for `r < NR`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile<const NR: usize>(
        w: *const f32,
        offs: &[usize],
        inp: *const f32,
        out: *mut f32,
        out_rs: usize,
    ) {
        unsafe {
            let mut a0 = [_mm256_setzero_ps(); NR];
            let mut a1 = [_mm256_setzero_ps(); NR];
            let mut wk = w;
            for &o in offs {
                let x0 = _mm256_loadu_ps(inp.add(o));
                let x1 = _mm256_loadu_ps(inp.add(o + 8));
                for r in 0..NR {
                    let b = _mm256_broadcast_ss(&*wk.add(r));
                    a0[r] = _mm256_fmadd_ps(x0, b, a0[r]);
                    a1[r] = _mm256_fmadd_ps(x1, b, a1[r]);
                }
                wk = wk.add(NR);
            }
            for r in 0..NR {
                _mm256_storeu_ps(out.add(r * out_rs), a0[r]);
                _mm256_storeu_ps(out.add(r * out_rs + 8), a1[r]);
            }
        }
    }
}

// ----- the op ----------------------------------------------------------------------------------

/// The convolution as a candle op: the forward pass, whose gradient is the backward pass, the
/// same op on `(x, w, g)` (see [`backward`]).
struct ConvOp {
    spec: ConvSpec,
    pass: Pass,
}

enum Pass {
    Forward,
    /// Inputs `(x, w, g)` with `g` the gradient of the forward output; with `mask` (the output
    /// of a ReLU op), the gradient is first zeroed where the output is 0. Output, flat:
    /// `dx` (x's shape) ++ `dw` (w's shape) ++ `db` ([Cout]).
    Backward { mask: Option<Tensor> },
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        match self.pass {
            Pass::Forward => "fastconv-conv2d",
            Pass::Backward { .. } => "fastconv-conv2d-bwd",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        match &self.pass {
            Pass::Forward => {
                let (x, w, b, g) = operands(&self.spec, (s1, l1), (s2, l2), (s3, l3, "b"))?;
                forward(&self.spec, x, w, b, &g)
            }
            Pass::Backward { mask } => {
                let (x, w, gr, g) = operands(&self.spec, (s1, l1), (s2, l2), (s3, l3, "grad"))?;
                if l3.dims() != [g.n, g.cout, g.ho, g.wo] {
                    candle_core::bail!("fastconv: grad shape {:?} does not match the output", l3.dims());
                }
                let mask_guard = mask.as_ref().map(|m| m.storage_and_layout());
                backward(&self.spec, x, w, gr, relu_mask(&mask_guard, gr.len())?, &g)
            }
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if !matches!(self.pass, Pass::Forward) {
            candle_core::bail!("fastconv: the backward pass has no gradient of its own");
        }
        let grad = grad.contiguous()?;
        let mask = if self.spec.relu {
            Some(res.contiguous()?)
        } else {
            None
        };
        let all = x.apply_op3_no_bwd(
            w,
            &grad,
            &ConvOp {
                spec: self.spec.clone(),
                pass: Pass::Backward { mask },
            },
        )?;
        let nx = x.elem_count();
        let nw = w.elem_count();
        let nb = b.elem_count();
        let dx = all.narrow(0, 0, nx)?.reshape(x.shape())?;
        let dw = all.narrow(0, nx, nw)?.reshape(w.shape())?;
        let db = all.narrow(0, nx + nw, nb)?.reshape(b.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

// ----- forward ----------------------------------------------------------------------------------

/// The forward pass: `y = conv(x, w) + b`, then ReLU if the spec says so.
fn forward(spec: &ConvSpec, x: &[f32], w: &[f32], b: &[f32], g: &Geom) -> Result<(CpuStorage, Shape)> {
    let g = *g;
    if b.len() != g.cout {
        candle_core::bail!(
            "fastconv: bias has {} values for {} channels",
            b.len(),
            g.cout
        );
    }
    let simd = spec.kernels == Kernels::Simd;
    let plan = ShiftPlan::forward(spec, &g, w);
    let out_img = g.cout * g.ho * g.wo;
    let in_img = g.cin * g.h * g.w;
    let qs = g.q.next_multiple_of(TILE_COLS);
    let slack = TILE_COLS;
    // Every value is written by the loop over images below.
    let mut y = alloc_output(g.n * out_img);
    let pad = spec.pad;
    let relu = spec.relu;
    for_image_chunks(g.n, out_img, &mut y, |first, ys, _par, inner| {
        with_scratch(|s| {
            resize(&mut s.a, g.cin * g.plane() + slack);
            resize(&mut s.b, g.cout * qs);
            for (i, yi) in ys.chunks_mut(out_img).enumerate() {
                let img = first + i;
                pad_into(&g, pad, &x[img * in_img..][..in_img], &mut s.a, slack);
                // Rows of channels outside every group stay 0 (+ bias).
                s.b[..g.cout * qs].fill(0.0);
                unsafe { plan.run(s.a.as_ptr(), s.b.as_mut_ptr(), qs, g.q, simd, inner) };
                for co in 0..g.cout {
                    for oy in 0..g.ho {
                        let src = &s.b[co * qs + oy * g.wp..][..g.wo];
                        let dst = &mut yi[(co * g.ho + oy) * g.wo..][..g.wo];
                        let bias = b[co];
                        if relu {
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d = (v + bias).max(0.0);
                            }
                        } else {
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d = v + bias;
                            }
                        }
                    }
                }
            }
        })
    });
    Ok((CpuStorage::F32(y), Shape::from((g.n, g.cout, g.ho, g.wo))))
}

// ----- backward ---------------------------------------------------------------------------------

/// Weight-gradient product: rows `co0..co1`, kernel row `ky`, taps `kx0..kx1` (one product
/// over all those taps, from the channels-last padded input).
#[derive(Clone, Copy, Debug)]
struct FRun {
    co0: usize,
    co1: usize,
    ky: usize,
    kx0: usize,
    kx1: usize,
}

fn filter_runs(spec: &ConvSpec) -> Vec<FRun> {
    let mut out = Vec::new();
    for gr in spec.sorted_groups() {
        for ky in gr.ky.0..gr.ky.1 {
            out.push(FRun {
                co0: gr.co.0,
                co1: gr.co.1,
                ky,
                kx0: gr.kx.0,
                kx1: gr.kx.1,
            });
        }
    }
    out
}

/// The sizes and plans of one backward pass.
struct BwdPlan<'a> {
    g: Geom,
    pad: [usize; 4],
    simd: bool,
    /// Padded output gradient gp[co][u]: output q at u = s + q, zeros around, so that the
    /// input gradient reads gp[co, s + p − off] for every padded-input position p.
    s: usize,
    /// Columns of the input gradient rows (padded rows pad_top .. pad_top + h).
    pcols: usize,
    ustride: usize,
    dplan: ShiftPlan,
    fruns: Vec<FRun>,
    /// Row length of the per-thread weight gradient dwc[co][ky][kx * cin + ci], padded by 8
    /// (the products run up to 7 columns past their taps).
    lrow: usize,
    in_img: usize,
    out_img: usize,
    x: &'a [f32],
    grad: &'a [f32],
    mask: Option<&'a [f32]>,
}

impl<'a> BwdPlan<'a> {
    fn new(spec: &ConvSpec, g: Geom, w: &[f32], x: &'a [f32], grad: &'a [f32], mask: Option<&'a [f32]>) -> Self {
        let s = g.max_off();
        let p0 = spec.pad[0] * g.wp;
        let pcols = (g.h * g.wp).next_multiple_of(TILE_COLS);
        let ustride = (p0 + s + pcols + TILE_COLS).max(s + g.q);
        Self {
            g,
            pad: spec.pad,
            simd: spec.kernels == Kernels::Simd,
            s,
            pcols,
            ustride,
            dplan: ShiftPlan::input_grad(spec, &g, w, ustride, s, p0),
            fruns: filter_runs(spec),
            lrow: g.kw * g.cin + 8,
            in_img: g.cin * g.h * g.w,
            out_img: g.cout * g.ho * g.wo,
            x,
            grad,
            mask,
        }
    }

    /// The gradients of images `first..` into `dxs` (whole images), and their weight and
    /// bias gradients, summed.
    fn images(&self, first: usize, dxs: &mut [f32], par: gemm::Parallelism, inner: bool) -> (Vec<f32>, Vec<f64>) {
        let g = &self.g;
        let mut dwc = vec![0f32; g.cout * g.kh * self.lrow];
        let mut db = vec![0f64; g.cout];
        with_scratch(|sc| {
            resize(&mut sc.a, g.cin * g.plane() + 8);
            resize(&mut sc.b, g.cout * self.ustride);
            resize(&mut sc.c, g.cin * self.pcols);
            for (i, dxi) in dxs.chunks_mut(self.in_img).enumerate() {
                let img = first + i;
                let m = self.mask.map(|m| &m[img * self.out_img..][..self.out_img]);
                let gr = &self.grad[img * self.out_img..][..self.out_img];
                grad_into(g, gr, m, &mut sc.b, self.ustride, self.s, &mut db);
                // Input gradient on padded rows pad_top .. pad_top + h.
                unsafe { self.dplan.run(sc.b.as_ptr(), sc.c.as_mut_ptr(), self.pcols, g.h * g.wp, self.simd, inner) };
                for ci in 0..g.cin {
                    for y in 0..g.h {
                        let src = &sc.c[ci * self.pcols + y * g.wp + self.pad[2]..][..g.w];
                        dxi[(ci * g.h + y) * g.w..][..g.w].copy_from_slice(src);
                    }
                }
                pad_into_t(g, self.pad, &self.x[img * self.in_img..][..self.in_img], &mut sc.a);
                self.weight_grad(&sc.a, &sc.b, &mut dwc, par);
            }
        });
        (dwc, db)
    }

    /// Adds one image's weight gradient to `dwc`, from its channels-last padded input `xpt`
    /// and its padded output gradient `gp`.
    fn weight_grad(&self, xpt: &[f32], gp: &[f32], dwc: &mut [f32], par: gemm::Parallelism) {
        let g = &self.g;
        for r in &self.fruns {
            // dwc[co][ky][kx·cin + ci] += Σ_q xpt[(q + ky·wp + kx)·cin + ci] g[co, q],
            // one product over j = (kx − kx0)·cin + ci, rounded up to 8 rows.
            let mj = ((r.kx1 - r.kx0) * g.cin).next_multiple_of(8);
            unsafe {
                sgemm(
                    mj,
                    r.co1 - r.co0,
                    g.q,
                    dwc.as_mut_ptr().add((r.co0 * g.kh + r.ky) * self.lrow + r.kx0 * g.cin),
                    g.kh * self.lrow,
                    1,
                    xpt.as_ptr().add((r.ky * g.wp + r.kx0) * g.cin),
                    g.cin,
                    1,
                    gp.as_ptr().add(r.co0 * self.ustride + self.s),
                    self.ustride,
                    1,
                    par,
                );
            }
        }
    }

    /// Sums the threads' parts into `dw` and `db`, keeping only the taps inside each
    /// channel's group.
    fn sum_parts(&self, spec: &ConvSpec, parts: &[(Vec<f32>, Vec<f64>)], dw: &mut [f32], db: &mut [f32]) {
        let g = &self.g;
        let kk = g.kh * g.kw;
        let mut db64 = vec![0f64; g.cout];
        for (dwc, dbt) in parts {
            for gr in spec.sorted_groups() {
                for co in gr.co.0..gr.co.1 {
                    for ky in gr.ky.0..gr.ky.1 {
                        for kx in gr.kx.0..gr.kx.1 {
                            let src = &dwc[(co * g.kh + ky) * self.lrow + kx * g.cin..][..g.cin];
                            for (ci, &v) in src.iter().enumerate() {
                                dw[(co * g.cin + ci) * kk + ky * g.kw + kx] += v;
                            }
                        }
                    }
                }
            }
            for (d, &v) in db64.iter_mut().zip(dbt) {
                *d += v;
            }
        }
        for (d, &v) in db.iter_mut().zip(&db64) {
            *d = v as f32;
        }
    }
}

/// The ReLU output of a backward pass as a slice of `len` values.
fn relu_mask<'a, S: std::ops::Deref<Target = Storage>>(m: &'a Option<(S, &Layout)>, len: usize) -> Result<Option<&'a [f32]>> {
    let Some((st, l)) = m else { return Ok(None) };
    let Storage::Cpu(c) = &**st else { candle_core::bail!("fastconv: relu output not on the cpu") };
    let m = slice(c, l, "relu output")?;
    if m.len() != len {
        candle_core::bail!("fastconv: relu output size mismatch");
    }
    Ok(Some(m))
}

/// The backward pass (see [`Pass::Backward`]).
fn backward(spec: &ConvSpec, x: &[f32], w: &[f32], gr: &[f32], mask: Option<&[f32]>, g: &Geom) -> Result<(CpuStorage, Shape)> {
    let g = *g;
    let plan = BwdPlan::new(spec, g, w, x, gr, mask);
    let nx = g.n * plan.in_img;
    let nw = g.cout * g.cin * g.kh * g.kw;
    // dx is written image by image below; dw and db are summed into zeros.
    let mut out = alloc_output(nx + nw + g.cout);
    let (dx, dwb) = out.split_at_mut(nx);
    let parts = for_image_chunks(g.n, plan.in_img, dx, |first, dxs, par, inner| plan.images(first, dxs, par, inner));
    let (dw, db) = dwb.split_at_mut(nw);
    plan.sum_parts(spec, &parts, dw, db);
    Ok((CpuStorage::F32(out), Shape::from(nx + nw + g.cout)))
}
