//! The real-time nets: space-to-depth by 4, then a few 3×3 convolutions on the 4×4 cells.
//!
//! # Weight names
//!
//! ```text
//! hide.conv{0,1}.{weight,bias}          weight [80, Cin, 3, 3], bias [80]
//! hide.out.{weight,bias}                weight [48, 80, 1, 1]
//! reveal.conv{0,1,2}.{weight,bias}
//! reveal.out.{weight,bias}
//! ```

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::{CHANNELS, Conv, HideOutput, output_activation};
use crate::fastconv;
use crate::onnx::{GraphBuilder, int_attr, string_attr};

/// Space-to-depth block of the fast nets: they work on 4×4 pixel cells.
pub const FAST_BLOCK: usize = 4;
/// Channels of a 4×4 cell of an RGB image (4·4·3).
pub const FAST_CELL: usize = FAST_BLOCK * FAST_BLOCK * CHANNELS;
/// Channels of the hidden layers of the fast nets.
pub const FAST_WIDTH: usize = 80;
/// 3×3 convolutions (each followed by ReLU) of the fast hide net.
pub const FAST_HIDE_CONVS: usize = 2;
/// 3×3 convolutions (each followed by ReLU) of the fast reveal net.
pub const FAST_REVEAL_CONVS: usize = 3;
/// Parameter count of the fast nets.
pub const FAST_PARAMETERS: usize = (9 * 2 * FAST_CELL * FAST_WIDTH + FAST_WIDTH)
    + (FAST_HIDE_CONVS - 1) * (9 * FAST_WIDTH * FAST_WIDTH + FAST_WIDTH)
    + (FAST_WIDTH * FAST_CELL + FAST_CELL)
    + (9 * FAST_CELL * FAST_WIDTH + FAST_WIDTH)
    + (FAST_REVEAL_CONVS - 1) * (9 * FAST_WIDTH * FAST_WIDTH + FAST_WIDTH)
    + (FAST_WIDTH * FAST_CELL + FAST_CELL);
/// Multiply-accumulates per pixel of `hide-fast.onnx` (per 4×4 cell / 16).
pub const FAST_HIDE_MACS_PER_PIXEL: u64 = ((9 * 2 * FAST_CELL * FAST_WIDTH
    + (FAST_HIDE_CONVS - 1) * 9 * FAST_WIDTH * FAST_WIDTH
    + FAST_WIDTH * FAST_CELL)
    / (FAST_BLOCK * FAST_BLOCK)) as u64;
/// Multiply-accumulates per pixel of `reveal-fast.onnx`.
pub const FAST_REVEAL_MACS_PER_PIXEL: u64 = ((9 * FAST_CELL * FAST_WIDTH
    + (FAST_REVEAL_CONVS - 1) * 9 * FAST_WIDTH * FAST_WIDTH
    + FAST_WIDTH * FAST_CELL)
    / (FAST_BLOCK * FAST_BLOCK)) as u64;

/// Description of the fast nets, stored in the ONNX metadata.
pub const FAST_ARCHITECTURE: &str = "stego fast nets: space-to-depth 4 (ONNX SpaceToDepth order, 48 channels per \
4x4 cell); hide = concat(s2d(cover), s2d(secret)) -> conv3x3 96->80 + relu -> conv3x3 80->80 + relu -> \
conv1x1 80->48 -> depth-to-space 4 (DCR) = z, container = sigmoid(logit(cover) + z); reveal = s2d(container) -> \
3 x (conv3x3 -> 80 + relu) -> conv1x1 80->48 -> depth-to-space 4 -> sigmoid";

/// `[N, C, H, W]` → `[N, C·b², H/b, W/b]`, the channel order of ONNX `SpaceToDepth`
/// (channel `(by·b + bx)·C + c`).
pub fn space_to_depth(x: &Tensor, b: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if h % b != 0 || w % b != 0 {
        candle_core::bail!("space_to_depth: {h}x{w} is not a multiple of {b}");
    }
    x.reshape((n, c, h / b, b, w / b, b))?.permute([0, 3, 5, 1, 2, 4])?.contiguous()?.reshape((n, c * b * b, h / b, w / b))
}

/// Inverse of [`space_to_depth`]: ONNX `DepthToSpace` in `DCR` mode.
pub fn depth_to_space(x: &Tensor, b: usize) -> Result<Tensor> {
    let (n, cb, h, w) = x.dims4()?;
    let c = cb / (b * b);
    x.reshape((n, b, b, c, h, w))?.permute([0, 3, 4, 1, 5, 2])?.contiguous()?.reshape((n, c, h * b, w * b))
}

fn relu_convs(n: usize, in_c: usize, vb: &VarBuilder) -> Result<Vec<Conv>> {
    (0..n).map(|i| Conv::new(if i == 0 { in_c } else { FAST_WIDTH }, FAST_WIDTH, 3, vb.pp(format!("conv{i}")))).collect()
}

fn run_relu_convs(convs: &[Conv], x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for c in convs {
        x = fastconv::conv2d_same_relu(&x, &c.weight, &c.bias, fastconv::same_pad(3))?;
    }
    Ok(x)
}

/// The real-time nets: all convolutions run on 4×4 cells (1/16 of the pixels), so hiding costs
/// [`FAST_HIDE_MACS_PER_PIXEL`] multiply-accumulates per pixel instead of the paper's ~291k.
///
/// Weight names: `hide.conv{0,1}`, `hide.out`, `reveal.conv{0,1,2}`, `reveal.out`.
#[derive(Debug, Clone)]
pub struct FastNets {
    pub hide: Vec<Conv>,
    pub hide_out: Conv,
    pub reveal: Vec<Conv>,
    pub reveal_out: Conv,
    pub output: HideOutput,
}

impl FastNets {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let h = vb.pp("hide");
        let r = vb.pp("reveal");
        Ok(Self {
            hide: relu_convs(FAST_HIDE_CONVS, 2 * FAST_CELL, &h)?,
            hide_out: Conv::new(FAST_WIDTH, FAST_CELL, 1, h.pp("out"))?,
            reveal: relu_convs(FAST_REVEAL_CONVS, FAST_CELL, &r)?,
            reveal_out: Conv::new(FAST_WIDTH, FAST_CELL, 1, r.pp("out"))?,
            output: HideOutput::default(),
        })
    }

    /// (cover, secret) → container, `[N, 3, H, W]` with H and W multiples of 4.
    pub fn hide(&self, cover: &Tensor, secret: &Tensor) -> Result<Tensor> {
        let x = Tensor::cat(&[space_to_depth(cover, FAST_BLOCK)?, space_to_depth(secret, FAST_BLOCK)?], 1)?;
        let z = depth_to_space(&self.hide_out.forward(&run_relu_convs(&self.hide, &x)?)?, FAST_BLOCK)?;
        self.output.apply(cover, &z)
    }

    /// container → revealed secret.
    pub fn reveal(&self, container: &Tensor) -> Result<Tensor> {
        let x = space_to_depth(container, FAST_BLOCK)?;
        output_activation(&depth_to_space(&self.reveal_out.forward(&run_relu_convs(&self.reveal, &x)?)?, FAST_BLOCK)?)
    }
}


// ----- ONNX -----------------------------------------------------------------------------------

impl GraphBuilder<'_> {
    /// [`space_to_depth`] by [`FAST_BLOCK`]: ONNX `SpaceToDepth`.
    fn space_to_depth(&mut self, x: &str) -> String {
        self.node("SpaceToDepth", &[x], None, vec![int_attr("blocksize", FAST_BLOCK as i64)])
    }

    /// [`depth_to_space`] by [`FAST_BLOCK`]: ONNX `DepthToSpace` in `DCR` mode.
    fn depth_to_space(&mut self, x: &str) -> String {
        let attrs = vec![int_attr("blocksize", FAST_BLOCK as i64), string_attr("mode", "DCR")];
        self.node("DepthToSpace", &[x], None, attrs)
    }

    /// `n` × (3×3 conv + ReLU), weights `{net}.conv{i}`.
    fn relu_convs(&mut self, x: &str, net: &str, n: usize) -> anyhow::Result<String> {
        let mut x = x.to_string();
        for i in 0..n {
            let c = self.conv(&x, &format!("{net}.conv{i}"), None)?;
            x = self.node("Relu", &[&c], None, vec![]);
        }
        Ok(x)
    }
}

/// [`FastNets::hide`] in the graph, up to the output convolution: its `z`.
pub(crate) fn onnx_hide(g: &mut GraphBuilder, cover: &str, secret: &str) -> anyhow::Result<String> {
    let c = g.space_to_depth(cover);
    let s = g.space_to_depth(secret);
    let cat = g.node("Concat", &[&c, &s], None, vec![int_attr("axis", 1)]);
    let x = g.relu_convs(&cat, "hide", FAST_HIDE_CONVS)?;
    let z = g.conv(&x, "hide.out", None)?;
    Ok(g.depth_to_space(&z))
}

/// [`FastNets::reveal`] in the graph, up to the output convolution: its `z`.
pub(crate) fn onnx_reveal(g: &mut GraphBuilder, container: &str) -> anyhow::Result<String> {
    let s = g.space_to_depth(container);
    let x = g.relu_convs(&s, "reveal", FAST_REVEAL_CONVS)?;
    let z = g.conv(&x, "reveal.out", None)?;
    Ok(g.depth_to_space(&z))
}
