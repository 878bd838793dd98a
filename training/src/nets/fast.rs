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
//!
//! The shapes of every convolution are in one table, [`fast_convs`]; parameter and
//! multiply-accumulate counts are read off it.

use std::collections::HashMap;

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::{CHANNELS, Conv, HideOutput, MODULUS, output_activation};
use crate::fastconv;
use crate::onnx::{GraphBuilder, int_attr, ints_attr, string_attr};

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
/// The shape choices of fast nets, besides their output ([`HideOutput`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastLayout {
    /// A [`Context`] branch after the first convolution of each net.
    pub context: bool,
    /// The slim digit-code nets ([`HideOutput::Modular`] only): the hide net reads the secret
    /// alone (the code's digits replace the cover's residues, so the cover tells the reveal
    /// net nothing) and the reveal net's middle convolution is 1×1. About 30 % fewer
    /// multiply-accumulates than the full nets ([`fast_macs_per_pixel`]).
    pub slim: bool,
}

/// One convolution of the fast nets: weight prefix, input and output channels, kernel size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvShape {
    pub name: String,
    pub input: usize,
    pub output: usize,
    pub kernel: usize,
}

impl ConvShape {
    fn new(name: String, input: usize, output: usize, kernel: usize) -> Self {
        Self { name, input, output, kernel }
    }

    /// Weights and bias.
    pub fn parameters(&self) -> usize {
        self.input * self.output * self.kernel * self.kernel + self.output
    }

    /// Multiply-accumulates per 4×4 cell.
    pub fn macs(&self) -> usize {
        self.input * self.output * self.kernel * self.kernel
    }
}

/// Every convolution of the fast nets of `layout` (hide net first, [`Context`] branches not
/// included), with the digit code's shapes when `modular`: the one place that knows them.
pub fn fast_convs(layout: FastLayout, modular: bool) -> Vec<ConvShape> {
    let code = if modular { CODE_VALUES } else { FAST_CELL };
    let hide_in = if layout.slim { FAST_CELL } else { 2 * FAST_CELL };
    let mut convs = Vec::new();
    for i in 0..FAST_HIDE_CONVS {
        convs.push(ConvShape::new(format!("hide.conv{i}"), if i == 0 { hide_in } else { FAST_WIDTH }, FAST_WIDTH, 3));
    }
    convs.push(ConvShape::new("hide.out".into(), FAST_WIDTH, code, 1));
    for i in 0..FAST_REVEAL_CONVS {
        let kernel = if layout.slim && i == 1 { 1 } else { 3 };
        convs.push(ConvShape::new(format!("reveal.conv{i}"), if i == 0 { code } else { FAST_WIDTH }, FAST_WIDTH, kernel));
    }
    convs.push(ConvShape::new("reveal.out".into(), FAST_WIDTH, FAST_CELL, 1));
    convs
}

/// Parameter count of the fast nets of `layout` (see [`fast_convs`]), context branches included.
pub fn fast_parameters(layout: FastLayout, modular: bool) -> usize {
    let context = if layout.context { 2 * CONTEXT_PARAMETERS } else { 0 };
    fast_convs(layout, modular).iter().map(ConvShape::parameters).sum::<usize>() + context
}

/// Multiply-accumulates per pixel of (hide, reveal) of the fast nets of `layout`.
pub fn fast_macs_per_pixel(layout: FastLayout, modular: bool) -> (u64, u64) {
    let context = if layout.context { CONTEXT_MACS_PER_PIXEL } else { 0 };
    let per_pixel = |net: &str| {
        let cell: usize = fast_convs(layout, modular).iter().filter(|c| c.name.starts_with(net)).map(ConvShape::macs).sum();
        (cell / (FAST_BLOCK * FAST_BLOCK)) as u64 + context
    };
    (per_pixel("hide."), per_pixel("reveal."))
}

/// Whether a fast hide net whose first convolution has weight shape `dims` reads the secret
/// alone (slim nets, [`FastLayout::slim`]) rather than cover and secret.
pub fn reads_secret_alone(dims: &[usize]) -> bool {
    dims.get(1) == Some(&FAST_CELL)
}

/// The cover value the hide net of slim nets assumes when made from full nets ([`slim_weights`]).
pub const SLIM_COVER: f64 = 0.5;

/// Weights of full digit-code nets made into those of slim ones ([`FastLayout::slim`]), for
/// `--init-from`: the hide net's first convolution keeps its secret half and adds what its
/// cover half makes of a mid-grey cover ([`SLIM_COVER`]) to its bias, so away from the frame's
/// edge it computes what it did for such a cover; the reveal net's middle 3×3 convolution
/// becomes the sum of its taps (what it made of features that are the same in the 3×3 cells
/// around: on the shipped nets this starts the slim ones at a secret APD of 8 instead of 38
/// for the centre tap alone). Weights of slim nets come back as they are.
pub fn slim_weights(mut weights: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let (Some(w), Some(bias)) = (weights.get("hide.conv0.weight").cloned(), weights.get("hide.conv0.bias").cloned()) else {
        candle_core::bail!("the checkpoint lacks hide.conv0.weight or hide.conv0.bias")
    };
    if w.dims()[1] == 2 * FAST_CELL {
        let cover_part = w.narrow(1, 0, FAST_CELL)?.sum_keepdim((1, 2, 3))?.flatten_all()?.affine(SLIM_COVER, 0.0)?;
        weights.insert("hide.conv0.bias".into(), (bias + cover_part)?);
        weights.insert("hide.conv0.weight".into(), w.narrow(1, FAST_CELL, FAST_CELL)?.contiguous()?);
    }
    if let Some(m) = weights.get("reveal.conv1.weight").cloned().filter(|m| m.dims()[3] == 3) {
        weights.insert("reveal.conv1.weight".into(), m.sum_keepdim((2, 3))?.contiguous()?);
    }
    Ok(weights)
}

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

/// The weights `w` (`[O, I, k, k]`) of a first convolution whose last 48 input channels are
/// the secret's 4×4 cells ([`space_to_depth`]), with those weights averaged over the cells'
/// `pool`×`pool` blocks: the convolution then computes, on any secret, what the original one
/// computes on the secret averaged over the blocks.
pub fn pool_secret_weights(w: &Tensor, pool: usize) -> Result<Tensor> {
    let (o, i, k, _) = w.dims4()?;
    let (b, cells) = (FAST_BLOCK, 3 * FAST_BLOCK * FAST_BLOCK);
    if pool == 0 || !b.is_multiple_of(pool) || i < cells {
        candle_core::bail!("cannot pool the secret weights of a [{o}, {i}, {k}, {k}] convolution over {pool}x{pool} blocks");
    }
    let secret = w.narrow(1, i - cells, cells)?;
    let g = b / pool;
    let shape = vec![o, g, pool, g, pool, 3, k, k];
    let pooled = secret.reshape(shape.clone())?.mean_keepdim(4)?.mean_keepdim(2)?.broadcast_as(shape)?.reshape((o, cells, k, k))?;
    if i == cells {
        return Ok(pooled);
    }
    Tensor::cat(&[w.narrow(1, 0, i - cells)?, pooled], 1)
}

/// The hide net's output convolution (`hide.out`: weight `[48, C, 1, 1]`, bias `[48]`, one
/// output per subpixel of the 4×4 cell, channel `(by·4 + bx)·3 + colour`) with each pixel's
/// three colour outputs replaced by their mean: the residual it puts out then moves a pixel's
/// red, green and blue alike (grey, up to the sigmoid's slope at each colour), which 4:2:0
/// recordings keep whole; a colour change loses most of itself to their half-resolution chroma.
pub fn grey_output(weight: &Tensor, bias: &Tensor) -> Result<(Tensor, Tensor)> {
    let (o, c, k, _) = weight.dims4()?;
    if o % 3 != 0 || bias.dims() != [o] {
        candle_core::bail!("cannot make the [{o}, {c}, {k}, {k}] output convolution grey: it needs 3 outputs per pixel and [{o}] biases");
    }
    let grey = |t: &Tensor, shape: Vec<usize>| -> Result<Tensor> {
        let mut per_colour = shape.clone();
        per_colour.splice(0..1, [o / 3, 3]);
        t.reshape(per_colour.clone())?.mean_keepdim(1)?.broadcast_as(per_colour)?.reshape(shape)
    };
    Ok((grey(weight, vec![o, c, k, k])?, grey(bias, vec![o])?))
}

/// Inverse of [`space_to_depth`]: ONNX `DepthToSpace` in `DCR` mode.
pub fn depth_to_space(x: &Tensor, b: usize) -> Result<Tensor> {
    let (n, cb, h, w) = x.dims4()?;
    let c = cb / (b * b);
    x.reshape((n, b, b, c, h, w))?.permute([0, 3, 4, 1, 5, 2])?.contiguous()?.reshape((n, c, h * b, w * b))
}

fn run_relu_convs(convs: &[Conv], x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for c in convs {
        x = fastconv::conv2d_same_relu(&x, &c.weight, &c.bias, fastconv::same_pad(c.kernel()))?;
    }
    Ok(x)
}

/// The code of fast nets with [`HideOutput::Modular`]: per 4×4 cell the hide net puts out
/// [`CODE_VALUES`] values, written in base-[`MODULUS`] digits, one digit per subpixel:
/// `(digits, values)` = 4 values on 3 digits (729 levels), 10 on 2 (81 levels), 16 on 1 (9
/// levels): 48 digits, the cell's 48 subpixels. The nets choose what goes into the fine and
/// the coarse values; the digits are fixed arithmetic, which nets could not learn.
pub const CODE_GROUPS: [(usize, usize); 3] = [(3, 4), (2, 10), (1, 16)];
/// Description of the fast nets with [`HideOutput::Modular`] of `layout`, stored in the ONNX
/// metadata: the convolutions read off [`fast_convs`], around the code's fixed arithmetic.
pub fn modular_architecture(layout: FastLayout) -> String {
    let convs = fast_convs(layout, true);
    let describe = |net: &str| {
        let of_net: Vec<&ConvShape> = convs.iter().filter(|c| c.name.starts_with(net)).collect();
        let last = of_net.len() - 1;
        let steps: Vec<String> = of_net
            .iter()
            .enumerate()
            .map(|(i, c)| format!("conv{k}x{k} {}->{}{}", c.input, c.output, if i < last { " + relu" } else { "" }, k = c.kernel))
            .collect();
        steps.join(" -> ")
    };
    let (name, hide_in) = if layout.slim { ("slim fast nets", "s2d4(secret)") } else { ("fast nets", "concat(s2d4(cover), s2d4(secret))") };
    format!(
        "stego {name} with a digit code: hide = {hide_in} -> {} -> sigmoid = 30 values per 4x4 cell, rounded to 729 (4 values), \
81 (10) and 9 (16) levels and written as 48 base-9 digits (lowest first), depth-to-space 4 = one digit per subpixel; container = \
the 8-bit value in b..b+8, b = clamp(round(255 cover) - 4, 0, 247), that is the digit modulo 9, over 255; reveal = round(255 container) \
mod 9 -> s2d4 -> digits combined into the 30 values -> {} -> depth-to-space 4 -> sigmoid",
        describe("hide."),
        describe("reveal.")
    )
}

/// Values per 4×4 cell of the code ([`CODE_GROUPS`]).
pub const CODE_VALUES: usize = 30;
const _: () = assert!(CODE_GROUPS[0].1 + CODE_GROUPS[1].1 + CODE_GROUPS[2].1 == CODE_VALUES);
const _: () = assert!(
    CODE_GROUPS[0].0 * CODE_GROUPS[0].1 + CODE_GROUPS[1].0 * CODE_GROUPS[1].1 + CODE_GROUPS[2].0 * CODE_GROUPS[2].1 == FAST_CELL
);

/// Code values in [0, 1] (`[N, CODE_VALUES, h, w]`) → their digits (`[N, 48, h, w]`, each
/// 0..M−1): each value rounded to its group's levels, then split into digits, lowest first.
/// Straight-through gradients, scaled so that [`decode_digits`] passes the gradient on as 1.
pub fn encode_digits(v: &Tensor) -> Result<Tensor> {
    let mut out = Vec::new();
    let mut ch = 0;
    for (k, count) in CODE_GROUPS {
        let levels = MODULUS.powi(k as i32) - 1.0;
        let x = v.narrow(1, ch, count)?.affine(levels, 0.0)?;
        let n = x.round()?.clamp(0f32, levels as f32)?.detach();
        for j in 0..k {
            let p = MODULUS.powi(j as i32);
            let d = super::modulo(&(&n / p)?.floor()?)?;
            let c = 1.0 / (k as f64 * p);
            out.push((d + (x.affine(c, 0.0)? - x.detach().affine(c, 0.0)?)?)?);
        }
        ch += count;
    }
    Tensor::cat(&out, 1)
}

/// The values of digits (`[N, 48, h, w]`, each 0..M−1) in [0, 1]: inverse of [`encode_digits`].
pub fn decode_digits(d: &Tensor) -> Result<Tensor> {
    let mut out = Vec::new();
    let mut ch = 0;
    for (k, count) in CODE_GROUPS {
        let levels = MODULUS.powi(k as i32) - 1.0;
        let mut n = d.narrow(1, ch, count)?;
        for j in 1..k {
            n = (n + d.narrow(1, ch + j * count, count)?.affine(MODULUS.powi(j as i32), 0.0)?)?;
        }
        out.push(n.affine(1.0 / levels, 0.0)?);
        ch += k * count;
    }
    Tensor::cat(&out, 1)
}

/// Channels of the context branch ([`Context`]).
pub const CONTEXT_WIDTH: usize = 48;
/// Height and width of the inputs of nets with a [`Context`] branch must be multiples of this
/// (its coarsest level works on 16×16-pixel cells).
pub const CONTEXT_BLOCK: usize = 16;
/// Multiply-accumulates per pixel of one [`Context`] branch: `down`, `mid`, `up` on 8×8 cells
/// (1/64 of the pixels), `down2`, `mid2`, `up2` on 16×16 cells (1/256).
pub const CONTEXT_MACS_PER_PIXEL: u64 = ((4 * FAST_WIDTH * CONTEXT_WIDTH + 9 * CONTEXT_WIDTH * CONTEXT_WIDTH + CONTEXT_WIDTH * FAST_WIDTH)
    / 64
    + (4 * CONTEXT_WIDTH * CONTEXT_WIDTH + 9 * CONTEXT_WIDTH * CONTEXT_WIDTH + CONTEXT_WIDTH * CONTEXT_WIDTH) / 256)
    as u64;
/// Parameter count of one [`Context`] branch.
pub const CONTEXT_PARAMETERS: usize = (4 * FAST_WIDTH * CONTEXT_WIDTH + CONTEXT_WIDTH)
    + 2 * (9 * CONTEXT_WIDTH * CONTEXT_WIDTH + CONTEXT_WIDTH)
    + (4 * CONTEXT_WIDTH * CONTEXT_WIDTH + CONTEXT_WIDTH)
    + (CONTEXT_WIDTH * CONTEXT_WIDTH + CONTEXT_WIDTH)
    + (CONTEXT_WIDTH * FAST_WIDTH + FAST_WIDTH);

/// Description of the context branch, appended to [`FAST_ARCHITECTURE`] in the metadata of nets
/// that have it.
pub const CONTEXT_ARCHITECTURE: &str = "; context branch after the first conv of each net (h, 80 channels on 4x4 cells): \
d = relu conv3x3 48->48(relu conv2x2/2 80->48(h)); e = relu conv3x3 48->48(relu conv2x2/2 48->48(d)); \
d += nearest2x(conv1x1 48->48(e)); h += nearest2x(conv1x1 48->80(d))";

/// The weight name that marks nets with a [`Context`] branch.
pub const CONTEXT_MARKER: &str = "hide.ctx.up.weight";

/// A small U-Net over coarser cells, added to the first hidden layer of a fast net: the 4×4
/// cells see the 8×8 and 16×16 cells around them (a receptive field of over 100 pixels instead
/// of 20–28) for [`CONTEXT_MACS_PER_PIXEL`] more multiply-accumulates per pixel. Only
/// operations that onnxruntime runs in its blocked (NCHWc) layout: strided and 3×3
/// convolutions, nearest upsampling by 2, additions.
///
/// Its last convolution (`up`) starts at zero, so nets given the branch compute what they did
/// without it (`--init-from` a run without it).
///
/// Weight names, under `{hide,reveal}.ctx`: `down` (2×2, stride 2) and `mid` (3×3) on 8×8
/// cells, `down2` and `mid2` on 16×16 cells, `up2` (1×1, to 8×8 cells) and `up` (1×1, to the
/// 4×4 cells).
#[derive(Debug, Clone)]
pub struct Context {
    pub down: Conv,
    pub mid: Conv,
    pub down2: Conv,
    pub mid2: Conv,
    pub up2: Conv,
    pub up: Conv,
}

/// The names of the weights a [`Context`] branch starts with at zero.
pub fn context_zero_init(name: &str) -> bool {
    name.contains(".ctx.up.")
}

/// A 2×2 convolution with stride 2 (`conv.weight` `[Cout, Cin, 2, 2]`) as space-to-depth by 2
/// and a 1×1 convolution, + ReLU.
fn conv2x2_stride2_relu(conv: &Conv, x: &Tensor) -> Result<Tensor> {
    let (o, c, _, _) = conv.weight.dims4()?;
    // Space-to-depth channel (by·2 + bx)·C + c ← weight [o, c, by, bx].
    let w = conv.weight.permute([0, 2, 3, 1])?.contiguous()?.reshape((o, 4 * c, 1, 1))?;
    fastconv::conv2d_same_relu(&space_to_depth(x, 2)?, &w, &conv.bias, fastconv::same_pad(1))
}

/// Nearest-neighbour upsampling by 2.
fn nearest2x(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    x.reshape((n, c, h, 1, w, 1))?.broadcast_as((n, c, h, 2, w, 2))?.reshape((n, c, 2 * h, 2 * w))
}

impl Context {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let (w, cw) = (FAST_WIDTH, CONTEXT_WIDTH);
        Ok(Self {
            down: Conv::new(w, cw, 2, vb.pp("down"))?,
            mid: Conv::new(cw, cw, 3, vb.pp("mid"))?,
            down2: Conv::new(cw, cw, 2, vb.pp("down2"))?,
            mid2: Conv::new(cw, cw, 3, vb.pp("mid2"))?,
            up2: Conv::new(cw, cw, 1, vb.pp("up2"))?,
            up: Conv::new(cw, w, 1, vb.pp("up"))?,
        })
    }

    /// `h` (hidden layer on 4×4 cells) plus what the coarser cells add to it.
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let d = run_relu_convs(std::slice::from_ref(&self.mid), &conv2x2_stride2_relu(&self.down, h)?)?;
        let e = run_relu_convs(std::slice::from_ref(&self.mid2), &conv2x2_stride2_relu(&self.down2, &d)?)?;
        let d = (d + nearest2x(&self.up2.forward(&e)?)?)?;
        h + nearest2x(&self.up.forward(&d)?)?
    }
}

/// The real-time nets: all convolutions run on 4×4 cells (1/16 of the pixels), so hiding costs
/// 5,900–8,200 multiply-accumulates per pixel ([`fast_macs_per_pixel`]) instead of the paper's
/// ~291k.
///
/// Weight names: `hide.conv{0,1}`, `hide.out`, `reveal.conv{0,1,2}`, `reveal.out`.
#[derive(Debug, Clone)]
pub struct FastNets {
    pub hide: Vec<Conv>,
    pub hide_out: Conv,
    pub reveal: Vec<Conv>,
    pub reveal_out: Conv,
    /// The context branches of (hide, reveal), when the nets have them.
    pub context: Option<(Context, Context)>,
    pub output: HideOutput,
}

impl FastNets {
    /// The nets of `layout` ([`fast_convs`]), forming the container as `output` says
    /// ([`HideOutput::Modular`] nets have other shapes: see [`CODE_GROUPS`]; slim nets need it).
    pub fn new(vb: VarBuilder, layout: FastLayout, output: HideOutput) -> Result<Self> {
        if layout.slim && output != HideOutput::Modular {
            candle_core::bail!("slim fast nets write the digit code (hide output modular), not {}", output.as_str());
        }
        let h = vb.pp("hide");
        let r = vb.pp("reveal");
        let context = if layout.context { Some((Context::new(h.pp("ctx"))?, Context::new(r.pp("ctx"))?)) } else { None };
        let mut convs = fast_convs(layout, output == HideOutput::Modular)
            .into_iter()
            .map(|c| Ok((c.name.clone(), Conv::new(c.input, c.output, c.kernel, vb.pp(&c.name))?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let mut take = |name: String| convs.remove(&name).expect("fast_convs lists every convolution");
        Ok(Self {
            context,
            hide: (0..FAST_HIDE_CONVS).map(|i| take(format!("hide.conv{i}"))).collect(),
            hide_out: take("hide.out".into()),
            reveal: (0..FAST_REVEAL_CONVS).map(|i| take(format!("reveal.conv{i}"))).collect(),
            reveal_out: take("reveal.out".into()),
            output,
        })
    }

    /// Whether these are slim nets ([`FastLayout::slim`]): the hide net reads the secret alone.
    pub fn slim(&self) -> bool {
        reads_secret_alone(self.hide[0].weight.dims())
    }

    /// The hide net's output convolution on the 4×4 cells of (cover, secret) (slim nets read
    /// the secret alone).
    pub fn hide_cells(&self, cover: &Tensor, secret: &Tensor) -> Result<Tensor> {
        let x = if self.slim() {
            space_to_depth(secret, FAST_BLOCK)?
        } else {
            Tensor::cat(&[space_to_depth(cover, FAST_BLOCK)?, space_to_depth(secret, FAST_BLOCK)?], 1)?
        };
        let h = self.with_context(&self.hide, &x, self.context.as_ref().map(|c| &c.0))?;
        self.hide_out.forward(&h)
    }

    /// (cover, secret) → container, `[N, 3, H, W]` with H and W multiples of 4.
    pub fn hide(&self, cover: &Tensor, secret: &Tensor) -> Result<Tensor> {
        let z = self.hide_cells(cover, secret)?;
        if self.output == HideOutput::Modular {
            let digits = encode_digits(&candle_nn::ops::sigmoid(&z)?)?;
            return super::modular_embed(cover, &depth_to_space(&digits, FAST_BLOCK)?);
        }
        self.output.apply(cover, &depth_to_space(&z, FAST_BLOCK)?)
    }

    /// container → revealed secret.
    pub fn reveal(&self, container: &Tensor) -> Result<Tensor> {
        let x = match self.output {
            HideOutput::Modular => {
                let digits = super::modular_residues(container)?;
                decode_digits(&space_to_depth(&digits, FAST_BLOCK)?)?
            }
            _ => space_to_depth(container, FAST_BLOCK)?,
        };
        let h = self.with_context(&self.reveal, &x, self.context.as_ref().map(|c| &c.1))?;
        output_activation(&depth_to_space(&self.reveal_out.forward(&h)?, FAST_BLOCK)?)
    }

    /// The hidden 3×3 convolutions, with the context branch after the first.
    fn with_context(&self, convs: &[Conv], x: &Tensor, context: Option<&Context>) -> Result<Tensor> {
        let h = run_relu_convs(&convs[..1], x)?;
        let h = match context {
            Some(c) => c.forward(&h)?,
            None => h,
        };
        run_relu_convs(&convs[1..], &h)
    }
}


// ----- ONNX -----------------------------------------------------------------------------------

impl GraphBuilder<'_> {
    /// [`space_to_depth`] by `b`: ONNX `SpaceToDepth`.
    fn space_to_depth(&mut self, x: &str, b: usize) -> String {
        self.node("SpaceToDepth", &[x], None, vec![int_attr("blocksize", b as i64)])
    }

    /// [`depth_to_space`] by `b`: ONNX `DepthToSpace` in `DCR` mode.
    fn depth_to_space(&mut self, x: &str, b: usize) -> String {
        let attrs = vec![int_attr("blocksize", b as i64), string_attr("mode", "DCR")];
        self.node("DepthToSpace", &[x], None, attrs)
    }

    /// A convolution (weights `prefix`) followed by ReLU.
    fn relu_conv(&mut self, x: &str, prefix: &str) -> anyhow::Result<String> {
        let c = self.conv(x, prefix, None)?;
        Ok(self.node("Relu", &[&c], None, vec![]))
    }

    /// The hidden 3×3 convolutions of `net` (weights `{net}.conv{i}`), with the [`Context`]
    /// branch after the first when the weights have one.
    fn hidden(&mut self, x: &str, net: &str, n: usize) -> anyhow::Result<String> {
        let mut x = self.relu_conv(x, &format!("{net}.conv0"))?;
        if self.has_weight(&format!("{net}.ctx.up.weight")) {
            x = self.context(&x, &format!("{net}.ctx"))?;
        }
        for i in 1..n {
            x = self.relu_conv(&x, &format!("{net}.conv{i}"))?;
        }
        Ok(x)
    }

    /// [`Context::forward`] in the graph.
    fn context(&mut self, h: &str, p: &str) -> anyhow::Result<String> {
        let d = self.conv2x2_stride2_relu(h, &format!("{p}.down"))?;
        let d = self.relu_conv(&d, &format!("{p}.mid"))?;
        let e = self.conv2x2_stride2_relu(&d, &format!("{p}.down2"))?;
        let e = self.relu_conv(&e, &format!("{p}.mid2"))?;
        let u = self.conv(&e, &format!("{p}.up2"), None)?;
        let u = self.nearest2x(&u);
        let d = self.node("Add", &[&d, &u], None, vec![]);
        let u = self.conv(&d, &format!("{p}.up"), None)?;
        let u = self.nearest2x(&u);
        Ok(self.node("Add", &[h, &u], None, vec![]))
    }

    /// A 2×2 convolution with stride 2 (weights `prefix`) + ReLU.
    fn conv2x2_stride2_relu(&mut self, x: &str, prefix: &str) -> anyhow::Result<String> {
        let (w, b) = (format!("{prefix}.weight"), format!("{prefix}.bias"));
        let dims = self.weight(&w)?.dims().to_vec();
        if dims.len() != 4 || dims[2..] != [2, 2] {
            anyhow::bail!("{w}: expected a [Cout, Cin, 2, 2] kernel, got {dims:?}");
        }
        self.weight(&b)?;
        let attrs = vec![ints_attr("kernel_shape", &[2, 2]), ints_attr("strides", &[2, 2]), ints_attr("pads", &[0, 0, 0, 0])];
        let c = self.node("Conv", &[x, &w, &b], None, attrs);
        Ok(self.node("Relu", &[&c], None, vec![]))
    }

    /// [`nearest2x`] in the graph: `Resize` (nearest, asymmetric coordinates, floor).
    fn nearest2x(&mut self, x: &str) -> String {
        const SCALES: &str = "context.scales";
        self.floats_once(SCALES, &[1.0, 1.0, 2.0, 2.0]);
        let attrs = vec![
            string_attr("mode", "nearest"),
            string_attr("coordinate_transformation_mode", "asymmetric"),
            string_attr("nearest_mode", "floor"),
        ];
        self.node("Resize", &[x, "", SCALES], None, attrs)
    }
}

impl GraphBuilder<'_> {
    /// Channels `from..to` of `x`.
    fn channels(&mut self, x: &str, from: usize, to: usize) -> String {
        let (s, e) = (format!("code.c{from}"), format!("code.c{to}"));
        self.int64s_once(&s, &[from as i64]);
        self.int64s_once(&e, &[to as i64]);
        self.int64s_once("code.axis1", &[1]);
        self.node("Slice", &[x, &s, &e, "code.axis1"], None, vec![])
    }

    /// [`encode_digits`] in the graph (float32).
    fn encode_digits(&mut self, v: &str) -> String {
        self.scalar_once("code.zero", 0.0);
        let mut out = Vec::new();
        let mut ch = 0;
        for (k, count) in CODE_GROUPS {
            let levels = format!("code.levels{k}");
            self.scalar_once(&levels, (MODULUS.powi(k as i32) - 1.0) as f32);
            let x = self.channels(v, ch, ch + count);
            let x = self.node("Mul", &[&x, &levels], None, vec![]);
            let x = self.node("Round", &[&x], None, vec![]);
            let n = self.node("Clip", &[&x, "code.zero", &levels], None, vec![]);
            for j in 0..k {
                let q = if j == 0 {
                    n.clone()
                } else {
                    let p = format!("code.pow{j}");
                    self.scalar_once(&p, MODULUS.powi(j as i32) as f32);
                    let q = self.node("Div", &[&n, &p], None, vec![]);
                    self.node("Floor", &[&q], None, vec![])
                };
                // The top digit is below 9 already.
                out.push(if j + 1 == k { q } else { self.modulo(&q) });
            }
            ch += count;
        }
        let refs: Vec<&str> = out.iter().map(String::as_str).collect();
        self.node("Concat", &refs, None, vec![int_attr("axis", 1)])
    }

    /// [`decode_digits`] in the graph (float32).
    fn decode_digits(&mut self, d: &str) -> String {
        let mut out = Vec::new();
        let mut ch = 0;
        for (k, count) in CODE_GROUPS {
            let mut n = self.channels(d, ch, ch + count);
            for j in 1..k {
                let p = format!("code.pow{j}");
                self.scalar_once(&p, MODULUS.powi(j as i32) as f32);
                let x = self.channels(d, ch + j * count, ch + (j + 1) * count);
                let x = self.node("Mul", &[&x, &p], None, vec![]);
                n = self.node("Add", &[&n, &x], None, vec![]);
            }
            let inv = format!("code.inv_levels{k}");
            self.scalar_once(&inv, (1.0 / (MODULUS.powi(k as i32) - 1.0)) as f32);
            out.push(self.node("Mul", &[&n, &inv], None, vec![]));
            ch += k * count;
        }
        let refs: Vec<&str> = out.iter().map(String::as_str).collect();
        self.node("Concat", &refs, None, vec![int_attr("axis", 1)])
    }
}

/// [`FastNets::hide`] of [`HideOutput::Modular`] nets in the graph, to the container.
pub(crate) fn onnx_hide_modular(g: &mut GraphBuilder, cover: &str, secret: &str, cover_f32: &str, container: &str) -> anyhow::Result<()> {
    let z = hide_cells(g, cover, secret)?;
    let z = g.cast_to_f32(&z);
    let v = g.node("Sigmoid", &[&z], None, vec![]);
    let digits = g.encode_digits(&v);
    let q = g.depth_to_space(&digits, FAST_BLOCK);
    g.modular_embed_symbols(cover_f32, &q, container);
    Ok(())
}

/// [`FastNets::reveal`] of [`HideOutput::Modular`] nets in the graph, up to the output
/// convolution: its `z` (in the working precision).
pub(crate) fn onnx_reveal_modular(g: &mut GraphBuilder, container: &str) -> anyhow::Result<String> {
    let r = g.modular_residues(container);
    let d = g.space_to_depth(&r, FAST_BLOCK);
    let v = g.decode_digits(&d);
    let v = g.cast_to_work(&v);
    reveal_cells(g, &v)
}

/// [`FastNets::hide`] in the graph, up to the output convolution: its `z`.
pub(crate) fn onnx_hide(g: &mut GraphBuilder, cover: &str, secret: &str) -> anyhow::Result<String> {
    let z = hide_cells(g, cover, secret)?;
    Ok(g.depth_to_space(&z, FAST_BLOCK))
}

/// [`FastNets::reveal`] in the graph, up to the output convolution: its `z`.
pub(crate) fn onnx_reveal(g: &mut GraphBuilder, container: &str) -> anyhow::Result<String> {
    let s = g.space_to_depth(container, FAST_BLOCK);
    reveal_cells(g, &s)
}

/// The hide net's output convolution on the cells of cover and secret.
/// (Slim nets, [`FastLayout::slim`], read the secret's cells alone.)
fn hide_cells(g: &mut GraphBuilder, cover: &str, secret: &str) -> anyhow::Result<String> {
    let s = g.space_to_depth(secret, FAST_BLOCK);
    let x = if g.weight_dims("hide.conv0.weight").is_some_and(reads_secret_alone) {
        s
    } else {
        let c = g.space_to_depth(cover, FAST_BLOCK);
        g.node("Concat", &[&c, &s], None, vec![int_attr("axis", 1)])
    };
    let x = g.hidden(&x, "hide", FAST_HIDE_CONVS)?;
    g.conv(&x, "hide.out", None)
}

/// The reveal net from its input cells to its output, back to pixels.
fn reveal_cells(g: &mut GraphBuilder, cells: &str) -> anyhow::Result<String> {
    let x = g.hidden(cells, "reveal", FAST_REVEAL_CONVS)?;
    let z = g.conv(&x, "reveal.out", None)?;
    Ok(g.depth_to_space(&z, FAST_BLOCK))
}
