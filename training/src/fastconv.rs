//! Fast CPU convolutions for training the paper nets in candle.
//!
//! Public API (stable):
//! * [`conv2d_same`]: stride-1 convolution with explicit zero padding, plus bias.
//! * [`aggregated_block`]: the nets' building block, `relu(concat(conv3x3, conv4x4, conv5x5))`.
//!
//! Both run as candle custom ops on the CPU (forward and backward), and fall back to plain
//! candle ops ([`conv2d_same_reference`], [`aggregated_block_reference`]) on other devices or
//! dtypes.
//!
//! # Method ("shifted GEMM", no im2col)
//!
//! Each image is zero-padded into a buffer `xp` of `Cin × Hp × Wp`. The output is computed on
//! the padded grid: output column `q = oy·Wp + ox` (the columns with `ox ≥ Wout` are computed
//! too and thrown away, `Wp/Wout` extra work, e.g. 68/64). Then the input needed by kernel
//! tap `(ky, kx)` for all outputs is the *contiguous* range `xp[ci, q + ky·Wp + kx]`, and the
//! convolution is a sum over taps of GEMMs
//! `acc[co, q] += W[co, ci, ky, kx] · xp[ci, q + ky·Wp + kx]` (M = Cout, K = Cin, N = outputs)
//! straight from `xp`, with no im2col copy. The backward passes are GEMMs of the same shapes:
//! input gradient `dxp[ci, q + off] += Wᵀ · g[co, q]` (accumulated, tap by tap, into the
//! padded input gradient), weight gradient `dW[tap][co, ci] += g[co, q] · xp[ci, q + off]ᵀ`.
//!
//! The aggregated block runs as one 5×5 convolution whose output channels are grouped by the
//! kernel support of their branch: taps in the central 3×3 serve all 65 channels, the other
//! 4×4 taps only the 4×4 and 5×5 branches (15 channels), the outer ring only the 5×5 branch
//! (5 channels). So the work is exactly that of the three separate convolutions, with one
//! padded input, bigger GEMMs, and bias + ReLU fused into the output copy.
//!
//! Images are spread over threads (rayon, one contiguous chunk of the batch per thread, each
//! GEMM single-threaded); with fewer images than threads the GEMMs themselves run in parallel.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{CpuStorage, CustomOp2, CustomOp3, D, DType, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Stride-1 convolution with explicit zero padding `[top, bottom, left, right]` plus bias.
///
/// `x`: [N, Cin, H, W] f32, `w`: [Cout, Cin, KH, KW], `b`: [Cout].
/// Output: [N, Cout, H+top+bottom-KH+1, W+left+right-KW+1].
pub fn conv2d_same(x: &Tensor, w: &Tensor, b: &Tensor, pad: [usize; 4]) -> Result<Tensor> {
    if !use_fast(x, w, b) {
        return conv2d_same_reference(x, w, b, pad);
    }
    let (cout, _cin, kh, kw) = w.dims4()?;
    let spec = ConvSpec {
        pad,
        groups: vec![Group { co: (0, cout), ky: (0, kh), kx: (0, kw) }],
        relu: false,
    };
    apply_conv(x, w, b, spec)
}

/// [`conv2d_same`] followed by ReLU, fused (one pass over the output).
pub fn conv2d_same_relu(x: &Tensor, w: &Tensor, b: &Tensor, pad: [usize; 4]) -> Result<Tensor> {
    if !use_fast(x, w, b) {
        return conv2d_same_reference(x, w, b, pad)?.relu();
    }
    let (cout, _cin, kh, kw) = w.dims4()?;
    let spec = ConvSpec {
        pad,
        groups: vec![Group { co: (0, cout), ky: (0, kh), kx: (0, kw) }],
        relu: true,
    };
    apply_conv(x, w, b, spec)
}

/// The aggregated block of the paper nets: `relu(concat(conv_a, conv_b, conv_c))` on the
/// channel dim, each branch with Keras-'same' padding ([`same_pad`]): 3×3 → [1,1,1,1],
/// 4×4 → [1,2,1,2], 5×5 → [2,2,2,2]. Branch weights `[Cout_i, Cin, K_i, K_i]`, biases
/// `[Cout_i]`; output `[N, ΣCout_i, H, W]` (50 + 10 + 5 = 65 channels in the paper).
pub fn aggregated_block(x: &Tensor, branches: [(&Tensor, &Tensor); 3]) -> Result<Tensor> {
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
        let [t, bo, l, r] = [(kh - 1) / 2, kh - 1 - (kh - 1) / 2, (kw - 1) / 2, kw - 1 - (kw - 1) / 2];
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
        groups.push(Group { co: (co, co + cout), ky: (y0, y0 + kh), kx: (x0, x0 + kw) });
        co += cout;
    }
    let w = Tensor::cat(&ws, 0)?;
    let b = Tensor::cat(&bs, 0)?;
    apply_conv(x, &w, &b, ConvSpec { pad: [pt, pb, pl, pr], groups, relu: true })
}

/// Padding giving Keras-style 'same' output for kernel size `k` (the extra row/col after).
pub fn same_pad(k: usize) -> [usize; 4] {
    let before = (k - 1) / 2;
    let after = k - 1 - before;
    [before, after, before, after]
}

/// Plain candle implementation of [`conv2d_same`] (reference for tests and benchmarks).
pub fn conv2d_same_reference(x: &Tensor, w: &Tensor, b: &Tensor, pad: [usize; 4]) -> Result<Tensor> {
    let [t, bo, l, r] = pad;
    let x = if t > 0 || bo > 0 { x.pad_with_zeros(2, t, bo)? } else { x.clone() };
    let x = if l > 0 || r > 0 { x.pad_with_zeros(3, l, r)? } else { x };
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
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    let b = b.contiguous()?;
    x.apply_op3(&w, &b, ConvOp { spec })
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
        Ok(Self { n, cin, h, w, cout, kh, kw, hp, wp, ho, wo, q: (ho - 1) * wp + wo })
    }
    fn plane(&self) -> usize {
        self.hp * self.wp
    }
}

/// One GEMM: kernel tap `(ky, kx)` for output channels `co0..co1`.
#[derive(Clone, Copy, Debug)]
struct Run {
    tap: usize,
    off: usize,
    co0: usize,
    co1: usize,
}

fn runs(spec: &ConvSpec, g: &Geom) -> Result<Vec<Run>> {
    let mut groups = spec.groups.clone();
    groups.sort_by_key(|gr| gr.co.0);
    for gr in &groups {
        if gr.co.1 > g.cout || gr.ky.1 > g.kh || gr.kx.1 > g.kw {
            candle_core::bail!("fastconv: group {gr:?} outside weight {}x{}x{}", g.cout, g.kh, g.kw);
        }
    }
    let mut out = Vec::new();
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            let mut cur: Option<(usize, usize)> = None;
            for gr in &groups {
                if !(gr.ky.0 <= ky && ky < gr.ky.1 && gr.kx.0 <= kx && kx < gr.kx.1) || gr.co.0 == gr.co.1 {
                    continue;
                }
                cur = match cur {
                    Some((a, b)) if b == gr.co.0 => Some((a, gr.co.1)),
                    Some((a, b)) => {
                        out.push(Run { tap: ky * g.kw + kx, off: ky * g.wp + kx, co0: a, co1: b });
                        Some(gr.co)
                    }
                    None => Some(gr.co),
                };
            }
            if let Some((a, b)) = cur {
                out.push(Run { tap: ky * g.kw + kx, off: ky * g.wp + kx, co0: a, co1: b });
            }
        }
    }
    Ok(out)
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
    xp: Vec<f32>,
    acc: Vec<f32>,
    gp: Vec<f32>,
    dxp: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn tile_cols() -> usize {
    std::env::var("FASTCONV_TILE").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 30)
}

fn resize(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Threads to spread images over, and the parallelism for each GEMM.
fn plan(n: usize) -> (usize, gemm::Parallelism) {
    let t = rayon::current_num_threads().max(1);
    if t == 1 {
        (1, gemm::Parallelism::None)
    } else if n >= t {
        (n.div_ceil(n.div_ceil(t)), gemm::Parallelism::None)
    } else {
        (1, gemm::Parallelism::Rayon(t))
    }
}

/// Zero-pad image `x` ([cin, h, w]) into `xp` ([cin, hp, wp]).
fn pad_into(g: &Geom, pad: [usize; 4], x: &[f32], xp: &mut [f32]) {
    let plane = g.plane();
    xp[..g.cin * plane].fill(0.0);
    for c in 0..g.cin {
        for y in 0..g.h {
            let src = &x[(c * g.h + y) * g.w..][..g.w];
            let dst = &mut xp[c * plane + (y + pad[0]) * g.wp + pad[2]..][..g.w];
            dst.copy_from_slice(src);
        }
    }
}

/// Copy the output gradient of one image ([cout, ho, wo]) onto the padded grid ([cout, q],
/// zeros in the thrown-away columns).
fn grad_into(g: &Geom, gr: &[f32], mask: Option<&[f32]>, gp: &mut [f32]) {
    for co in 0..g.cout {
        let dst = &mut gp[co * g.q..][..g.q];
        for oy in 0..g.ho {
            let row = &mut dst[oy * g.wp..];
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
            if oy + 1 < g.ho {
                row[g.wo..g.wp].fill(0.0);
            }
        }
    }
}

/// `wt[tap][co][ci] = w[co][ci][tap]`.
fn transpose_weights(g: &Geom, w: &[f32]) -> Vec<f32> {
    let kk = g.kh * g.kw;
    let mut wt = vec![0f32; kk * g.cout * g.cin];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            let src = &w[(co * g.cin + ci) * kk..][..kk];
            for (tap, &v) in src.iter().enumerate() {
                wt[(tap * g.cout + co) * g.cin + ci] = v;
            }
        }
    }
    wt
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

// ----- forward --------------------------------------------------------------------------------

struct ConvOp {
    spec: ConvSpec,
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "fastconv-conv2d"
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
        let x = slice(s1, l1, "x")?;
        let w = slice(s2, l2, "w")?;
        let b = slice(s3, l3, "b")?;
        let g = Geom::new(l1.dims(), l2.dims(), self.spec.pad)?;
        if b.len() != g.cout {
            candle_core::bail!("fastconv: bias has {} values for {} channels", b.len(), g.cout);
        }
        let runs = runs(&self.spec, &g)?;
        let wt = transpose_weights(&g, w);
        let out_img = g.cout * g.ho * g.wo;
        let in_img = g.cin * g.h * g.w;
        let mut y = vec![0f32; g.n * out_img];
        let (threads, par) = plan(g.n);
        let per = g.n.div_ceil(threads).max(1);
        let pad = self.spec.pad;
        let relu = self.spec.relu;
        let work = |(t, ys): (usize, &mut [f32])| {
            SCRATCH.with(|s| {
                let s = &mut *s.borrow_mut();
                resize(&mut s.xp, g.cin * g.plane());
                resize(&mut s.acc, g.cout * g.q);
                for (i, yi) in ys.chunks_mut(out_img.max(1)).enumerate() {
                    let img = t * per + i;
                    pad_into(&g, pad, &x[img * in_img..][..in_img], &mut s.xp);
                    for co in 0..g.cout {
                        s.acc[co * g.q..][..g.q].fill(b[co]);
                    }
                    let tile = tile_cols();
                    for q0 in (0..g.q).step_by(tile) {
                        let nq = tile.min(g.q - q0);
                        for r in &runs {
                            unsafe {
                                sgemm(
                                    r.co1 - r.co0,
                                    nq,
                                    g.cin,
                                    s.acc.as_mut_ptr().add(r.co0 * g.q + q0),
                                    1,
                                    g.q,
                                    wt.as_ptr().add((r.tap * g.cout + r.co0) * g.cin),
                                    1,
                                    g.cin,
                                    s.xp.as_ptr().add(r.off + q0),
                                    1,
                                    g.plane(),
                                    par,
                                );
                            }
                        }
                    }
                    for co in 0..g.cout {
                        for oy in 0..g.ho {
                            let src = &s.acc[co * g.q + oy * g.wp..][..g.wo];
                            let dst = &mut yi[(co * g.ho + oy) * g.wo..][..g.wo];
                            if relu {
                                for (d, &v) in dst.iter_mut().zip(src) {
                                    *d = v.max(0.0);
                                }
                            } else {
                                dst.copy_from_slice(src);
                            }
                        }
                    }
                }
            })
        };
        if threads > 1 {
            y.par_chunks_mut((per * out_img).max(1)).enumerate().for_each(work);
        } else if !y.is_empty() {
            work((0, &mut y[..]));
        }
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.cout, g.ho, g.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let mask = if self.spec.relu { Some(res.contiguous()?) } else { None };
        let all = x.apply_op3_no_bwd(w, &grad, &ConvBwdOp { spec: self.spec.clone(), mask })?;
        let nx = x.elem_count();
        let nw = w.elem_count();
        let nb = b.elem_count();
        let dx = all.narrow(0, 0, nx)?.reshape(x.shape())?;
        let dw = all.narrow(0, nx, nw)?.reshape(w.shape())?;
        let db = all.narrow(0, nx + nw, nb)?.reshape(b.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

// ----- backward -------------------------------------------------------------------------------

/// `grad * (res > 0)`.
struct ReluMask;

impl CustomOp2 for ReluMask {
    fn name(&self) -> &'static str {
        "fastconv-relu-mask"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = slice(s1, l1, "grad")?;
        let r = slice(s2, l2, "res")?;
        if g.len() != r.len() {
            candle_core::bail!("fastconv: relu mask size mismatch");
        }
        let mut out = vec![0f32; g.len()];
        out.par_chunks_mut(1 << 16)
            .zip(g.par_chunks(1 << 16).zip(r.par_chunks(1 << 16)))
            .for_each(|(o, (g, r))| {
                for ((o, &g), &r) in o.iter_mut().zip(g).zip(r) {
                    *o = if r > 0.0 { g } else { 0.0 };
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Inputs `(x, w, g)` with `g` the gradient of the op's output; with `mask` (the output of a
/// ReLU op), the gradient is first zeroed where the output is 0. Output, flat:
/// `dx` (x's shape) ++ `dw` (w's shape) ++ `db` ([Cout]).
struct ConvBwdOp {
    spec: ConvSpec,
    mask: Option<Tensor>,
}

/// Weight-gradient GEMM: rows `co0..co1`, kernel row `ky`, taps `kx0..kx1` (one product
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
    for gr in &spec.groups {
        if gr.co.0 == gr.co.1 || gr.kx.0 == gr.kx.1 {
            continue;
        }
        for ky in gr.ky.0..gr.ky.1 {
            out.push(FRun { co0: gr.co.0, co1: gr.co.1, ky, kx0: gr.kx.0, kx1: gr.kx.1 });
        }
    }
    out
}

/// Zero-pad image `x` ([cin, h, w]) into `xpt`, channels-last: `xpt[(py * wp + px) * cin + c]`,
/// plus 8 zeros at the end.
fn pad_into_t(g: &Geom, pad: [usize; 4], x: &[f32], xpt: &mut [f32]) {
    let len = g.plane() * g.cin + 8;
    xpt[..len].fill(0.0);
    for y in 0..g.h {
        let row = &mut xpt[((y + pad[0]) * g.wp + pad[2]) * g.cin..][..g.w * g.cin];
        for c in 0..g.cin {
            let src = &x[(c * g.h + y) * g.w..][..g.w];
            for (xx, &v) in src.iter().enumerate() {
                row[xx * g.cin + c] = v;
            }
        }
    }
}

impl CustomOp3 for ConvBwdOp {
    fn name(&self) -> &'static str {
        "fastconv-conv2d-bwd"
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
        let x = slice(s1, l1, "x")?;
        let w = slice(s2, l2, "w")?;
        let gr = slice(s3, l3, "grad")?;
        let g = Geom::new(l1.dims(), l2.dims(), self.spec.pad)?;
        if l3.dims() != [g.n, g.cout, g.ho, g.wo] {
            candle_core::bail!("fastconv: grad shape {:?} does not match the output", l3.dims());
        }
        let mask_guard = self.mask.as_ref().map(|m| m.storage_and_layout());
        let mask: Option<&[f32]> = match &mask_guard {
            Some((st, l)) => match &**st {
                Storage::Cpu(c) => {
                    let m = slice(c, l, "relu output")?;
                    if m.len() != gr.len() {
                        candle_core::bail!("fastconv: relu output size mismatch");
                    }
                    Some(m)
                }
                _ => candle_core::bail!("fastconv: relu output not on the cpu"),
            },
            None => None,
        };
        let runs = runs(&self.spec, &g)?;
        let fruns = filter_runs(&self.spec);
        let wt = transpose_weights(&g, w);
        let kk = g.kh * g.kw;
        let out_img = g.cout * g.ho * g.wo;
        let in_img = g.cin * g.h * g.w;
        let nx = g.n * in_img;
        let nw = g.cout * g.cin * kk;
        // Weight gradient per thread: dwc[co][ky][kx * cin + ci], rows padded by 8 (the
        // products may run up to 7 columns past their taps).
        let lrow = g.kw * g.cin + 8;
        let ndwc = g.cout * g.kh * lrow;
        let mut out = vec![0f32; nx + nw + g.cout];
        let (dx, dwb) = out.split_at_mut(nx);
        let (threads, par) = plan(g.n);
        let per = g.n.div_ceil(threads).max(1);
        let pad = self.spec.pad;
        let plane = g.plane();
        let work = |(t, dxs): (usize, &mut [f32])| -> (Vec<f32>, Vec<f64>) {
            let mut dwc = vec![0f32; ndwc];
            let mut db = vec![0f64; g.cout];
            SCRATCH.with(|s| {
                let s = &mut *s.borrow_mut();
                resize(&mut s.xp, g.cin * plane + 8);
                resize(&mut s.dxp, g.cin * plane);
                resize(&mut s.gp, g.cout * g.q);
                for (i, dxi) in dxs.chunks_mut(in_img.max(1)).enumerate() {
                    let img = t * per + i;
                    pad_into_t(&g, pad, &x[img * in_img..][..in_img], &mut s.xp);
                    grad_into(&g, &gr[img * out_img..][..out_img], mask.map(|m| &m[img * out_img..][..out_img]), &mut s.gp);
                    s.dxp[..g.cin * plane].fill(0.0);
                    let skip = std::env::var("FASTCONV_SKIP").unwrap_or_default();
                    for r in runs.iter().filter(|_| !skip.contains("data")) {
                        // dxp[ci, q + off] += Σ_co W[co, ci, tap] g[co, q]
                        unsafe {
                            sgemm(
                                g.cin,
                                g.q,
                                r.co1 - r.co0,
                                s.dxp.as_mut_ptr().add(r.off),
                                1,
                                plane,
                                wt.as_ptr().add((r.tap * g.cout + r.co0) * g.cin),
                                g.cin,
                                1,
                                s.gp.as_ptr().add(r.co0 * g.q),
                                1,
                                g.q,
                                par,
                            );
                        }
                    }
                    for r in fruns.iter().filter(|_| !skip.contains("filter")) {
                        // dwc[co][ky][kx * cin + ci] += Σ_q xpt[(q + ky·wp + kx) * cin + ci] g[co, q]
                        // as one product over j = (kx - kx0) * cin + ci, rounded up to 8 rows.
                        let m = ((r.kx1 - r.kx0) * g.cin).next_multiple_of(8);
                        unsafe {
                            sgemm(
                                m,
                                r.co1 - r.co0,
                                g.q,
                                dwc.as_mut_ptr().add((r.co0 * g.kh + r.ky) * lrow + r.kx0 * g.cin),
                                g.kh * lrow,
                                1,
                                s.xp.as_ptr().add((r.ky * g.wp + r.kx0) * g.cin),
                                g.cin,
                                1,
                                s.gp.as_ptr().add(r.co0 * g.q),
                                g.q,
                                1,
                                par,
                            );
                        }
                    }
                    for (co, d) in db.iter_mut().enumerate() {
                        *d += s.gp[co * g.q..][..g.q].iter().map(|&v| v as f64).sum::<f64>();
                    }
                    for ci in 0..g.cin {
                        for y in 0..g.h {
                            let src = &s.dxp[ci * plane + (y + pad[0]) * g.wp + pad[2]..][..g.w];
                            dxi[(ci * g.h + y) * g.w..][..g.w].copy_from_slice(src);
                        }
                    }
                }
            });
            (dwc, db)
        };
        let parts: Vec<(Vec<f32>, Vec<f64>)> = if threads > 1 {
            dx.par_chunks_mut((per * in_img).max(1)).enumerate().map(work).collect()
        } else if nx > 0 {
            vec![work((0, dx))]
        } else {
            vec![]
        };
        let (dw, db) = dwb.split_at_mut(nw);
        // Sum the threads' parts; keep only the taps inside each channel's group.
        let mut support = vec![false; g.cout * kk];
        for gr in &self.spec.groups {
            for co in gr.co.0..gr.co.1 {
                for ky in gr.ky.0..gr.ky.1 {
                    for kx in gr.kx.0..gr.kx.1 {
                        support[co * kk + ky * g.kw + kx] = true;
                    }
                }
            }
        }
        let mut db64 = vec![0f64; g.cout];
        for (dwc, dbt) in &parts {
            for co in 0..g.cout {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        if !support[co * kk + ky * g.kw + kx] {
                            continue;
                        }
                        let src = &dwc[(co * g.kh + ky) * lrow + kx * g.cin..][..g.cin];
                        for (ci, &v) in src.iter().enumerate() {
                            dw[(co * g.cin + ci) * kk + ky * g.kw + kx] += v;
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
        Ok((CpuStorage::F32(out), Shape::from(nx + nw + g.cout)))
    }
}
