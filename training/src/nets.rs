//! The three networks of Baluja (NIPS 2017), "Hiding Images in Plain Sight".
//!
//! * **Prep net**: 2 aggregated blocks on the secret (3 → 65 → 65 channels).
//! * **Hide net**: 5 aggregated blocks on `concat(cover, prep(secret))` (68 → 65 … 65), then
//!   a 1×1 convolution to 3 channels and a sigmoid: the container.
//! * **Reveal net**: 5 aggregated blocks on the container (3 → 65 … 65), then a 1×1
//!   convolution to 3 channels and a sigmoid: the revealed secret.
//!
//! An aggregated block runs three convolutions on the same input — 50 filters 3×3, 10 filters
//! 4×4, 5 filters 5×5, all stride 1 with Keras-style 'same' padding (the 4×4 one padded 1
//! before and 2 after) — concatenates them on channels (65) and applies ReLU
//! ([`crate::fastconv::aggregated_block`]).
//!
//! These are the nets with the paper's **485,541** parameters: the output layers are 1×1
//! (a 3×3 output layer would give 488,661).
//!
//! # Weight names
//!
//! One flat `name → tensor` map (a [`VarMap`] while training, `checkpoint.safetensors` on
//! disk), read back as is by the ONNX exporter:
//!
//! ```text
//! prep.block{0,1}.conv{3,4,5}.{weight,bias}       weight [Cout, Cin, k, k], bias [Cout]
//! hide.block{0..4}.conv{3,4,5}.{weight,bias}
//! hide.out.{weight,bias}                          weight [3, 65, 1, 1]
//! reveal.block{0..4}.conv{3,4,5}.{weight,bias}
//! reveal.out.{weight,bias}
//! ```

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stego::Variant;

use crate::fastconv;

/// Number of filters of each branch of an aggregated block: (kernel size, filters).
pub const BRANCHES: [(usize, usize); 3] = [(3, 50), (4, 10), (5, 5)];
/// Output channels of an aggregated block (50 + 10 + 5).
pub const BLOCK_CHANNELS: usize = 65;
/// Number of aggregated blocks of the prep net.
pub const PREP_BLOCKS: usize = 2;
/// Number of aggregated blocks of the hide net.
pub const HIDE_BLOCKS: usize = 5;
/// Number of aggregated blocks of the reveal net.
pub const REVEAL_BLOCKS: usize = 5;
/// Kernel size of the output convolution of the hide and reveal nets.
pub const OUT_KERNEL: usize = 1;
/// Parameter count of the three paper nets together.
pub const PAPER_PARAMETERS: usize = 485_541;
/// Multiply-accumulates per pixel of `hide.onnx` (prep 49,980 + hide 241,275).
pub const HIDE_MACS_PER_PIXEL: u64 = 49_980 + 241_275;
/// Multiply-accumulates per pixel of `reveal.onnx`.
pub const REVEAL_MACS_PER_PIXEL: u64 = 193_500;
/// Colour channels of images.
pub const CHANNELS: usize = 3;

/// Short human-readable description, stored in the ONNX metadata.
pub const ARCHITECTURE: &str = "Baluja 2017 paper nets: aggregated block = relu(concat(conv3x3 x50, \
conv4x4 x10, conv5x5 x5)), 'same' padding (4x4: 1 before, 2 after); prep = 2 blocks on the \
secret; hide = 5 blocks on concat(cover, prep) + conv1x1 to 3 + sigmoid; reveal = 5 blocks + \
conv1x1 to 3 + sigmoid; 485541 parameters in all";

/// One convolution: weight `[Cout, Cin, k, k]` and bias `[Cout]`.
#[derive(Debug, Clone)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Conv {
    /// Creates (or fetches) `weight` and `bias` under `vb`.
    pub fn new(in_c: usize, out_c: usize, k: usize, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints((out_c, in_c, k, k), "weight", candle_nn::init::ZERO)?;
        let bias = vb.get_with_hints(out_c, "bias", candle_nn::init::ZERO)?;
        Ok(Self { weight, bias })
    }

    /// Kernel size.
    pub fn kernel(&self) -> usize {
        self.weight.dims()[3]
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        fastconv::conv2d_same(x, &self.weight, &self.bias, fastconv::same_pad(self.kernel()))
    }
}

/// Aggregated block: relu(concat(conv3×3 ×50, conv4×4 ×10, conv5×5 ×5)).
#[derive(Debug, Clone)]
pub struct AggregatedBlock {
    pub convs: [Conv; 3],
}

impl AggregatedBlock {
    /// Block on `in_c` input channels; weights `conv3`, `conv4`, `conv5` under `vb`.
    pub fn new(in_c: usize, vb: VarBuilder) -> Result<Self> {
        let [(k0, f0), (k1, f1), (k2, f2)] = BRANCHES;
        Ok(Self {
            convs: [
                Conv::new(in_c, f0, k0, vb.pp(format!("conv{k0}")))?,
                Conv::new(in_c, f1, k1, vb.pp(format!("conv{k1}")))?,
                Conv::new(in_c, f2, k2, vb.pp(format!("conv{k2}")))?,
            ],
        })
    }
}

impl Module for AggregatedBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [a, b, c] = &self.convs;
        fastconv::aggregated_block(
            x,
            [(&a.weight, &a.bias), (&b.weight, &b.bias), (&c.weight, &c.bias)],
        )
    }
}

fn blocks(n: usize, in_c: usize, vb: &VarBuilder) -> Result<Vec<AggregatedBlock>> {
    (0..n)
        .map(|i| AggregatedBlock::new(if i == 0 { in_c } else { BLOCK_CHANNELS }, vb.pp(format!("block{i}"))))
        .collect()
}

fn run_blocks(blocks: &[AggregatedBlock], x: &Tensor) -> Result<Tensor> {
    let mut x = x.clone();
    for b in blocks {
        x = b.forward(&x)?;
    }
    Ok(x)
}

/// How the hide net turns its last convolution into the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HideOutput {
    /// `sigmoid(z)`: the paper's layout (the Keras version used a ReLU; see the crate docs).
    Sigmoid,
    /// `sigmoid(logit(c̃) + z)` with `c̃ = ε + (1 − 2ε)·cover`, ε = 1/512: the hide net learns a
    /// residual over the cover. At initialisation the container already equals the cover
    /// (z ≈ 0), so training spends its steps on hiding rather than on learning to copy the
    /// cover through five blocks; still bounded to (0, 1) with a gradient everywhere. The
    /// default, for both architectures.
    #[default]
    Residual,
}

/// ε of [`HideOutput::Residual`].
pub const RESIDUAL_EPS: f32 = 1.0 / 512.0;

impl HideOutput {
    /// The output of the nets trained before there was a choice (the paper nets; runs saved
    /// then have no `hide_output` in their `state.json`).
    pub fn before_option() -> Self {
        HideOutput::Sigmoid
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HideOutput::Sigmoid => "sigmoid",
            HideOutput::Residual => "residual",
        }
    }
}

/// `logit(ε + (1 − 2ε)·x)`, the cover term of [`HideOutput::Residual`].
pub fn cover_logit(cover: &Tensor) -> Result<Tensor> {
    let c = cover.affine((1.0 - 2.0 * RESIDUAL_EPS) as f64, RESIDUAL_EPS as f64)?;
    let one_minus = c.affine(-1.0, 1.0)?;
    (c / one_minus)?.log()
}

/// Bounds the output to [0, 1] (see the crate docs for why a sigmoid).
pub fn output_activation(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::sigmoid(x)
}

/// Preparation network: 2 aggregated blocks on the secret.
#[derive(Debug, Clone)]
pub struct PrepNet {
    pub blocks: Vec<AggregatedBlock>,
}

impl PrepNet {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self { blocks: blocks(PREP_BLOCKS, CHANNELS, &vb)? })
    }
}

impl Module for PrepNet {
    fn forward(&self, secret: &Tensor) -> Result<Tensor> {
        run_blocks(&self.blocks, secret)
    }
}

/// Hiding network: 5 aggregated blocks on concat(cover, prepared secret), 1×1 conv, sigmoid.
#[derive(Debug, Clone)]
pub struct HideNet {
    pub blocks: Vec<AggregatedBlock>,
    pub out: Conv,
    pub output: HideOutput,
}

impl HideNet {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            blocks: blocks(HIDE_BLOCKS, CHANNELS + BLOCK_CHANNELS, &vb)?,
            out: Conv::new(BLOCK_CHANNELS, CHANNELS, OUT_KERNEL, vb.pp("out"))?,
            output: HideOutput::default(),
        })
    }

    /// Container from the cover and the prep net's output.
    pub fn forward(&self, cover: &Tensor, prepared: &Tensor) -> Result<Tensor> {
        let x = Tensor::cat(&[cover, prepared], 1)?;
        let z = self.out.forward(&run_blocks(&self.blocks, &x)?)?;
        match self.output {
            HideOutput::Sigmoid => output_activation(&z),
            HideOutput::Residual => output_activation(&(cover_logit(cover)? + z)?),
        }
    }
}

/// Reveal network: 5 aggregated blocks on the container, 1×1 conv, sigmoid.
#[derive(Debug, Clone)]
pub struct RevealNet {
    pub blocks: Vec<AggregatedBlock>,
    pub out: Conv,
}

impl RevealNet {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            blocks: blocks(REVEAL_BLOCKS, CHANNELS, &vb)?,
            out: Conv::new(BLOCK_CHANNELS, CHANNELS, OUT_KERNEL, vb.pp("out"))?,
        })
    }
}

impl Module for RevealNet {
    fn forward(&self, container: &Tensor) -> Result<Tensor> {
        output_activation(&self.out.forward(&run_blocks(&self.blocks, container)?)?)
    }
}

/// The three nets together, weights under `prep.`, `hide.` and `reveal.`.
#[derive(Debug, Clone)]
pub struct PaperNets {
    pub prep: PrepNet,
    pub hide: HideNet,
    pub reveal: RevealNet,
}

impl PaperNets {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            prep: PrepNet::new(vb.pp("prep"))?,
            hide: HideNet::new(vb.pp("hide"))?,
            reveal: RevealNet::new(vb.pp("reveal"))?,
        })
    }

    /// The same nets with the hide net's output mode set.
    pub fn with_hide_output(mut self, output: HideOutput) -> Self {
        self.hide.output = output;
        self
    }

    /// Prep + hide: (cover, secret) → container, all `[N, 3, H, W]` in [0, 1].
    pub fn hide(&self, cover: &Tensor, secret: &Tensor) -> Result<Tensor> {
        self.hide.forward(cover, &self.prep.forward(secret)?)
    }

    /// Reveal: container → revealed secret.
    pub fn reveal(&self, container: &Tensor) -> Result<Tensor> {
        self.reveal.forward(container)
    }
}

/// What the training needs to know of the nets of each runtime [`Variant`]. The `robust`
/// variant is the fast nets trained through simulated recordings, so it has their shapes; a
/// run's `--arch` is `paper` or `fast` (`--robust` makes fast nets robust).
pub trait VariantNets: Copy {
    /// The nets' architecture: [`Variant::Paper`] or [`Variant::Fast`] (for `robust` too).
    fn nets(self) -> Variant;
    /// The runtime variant of these nets, trained through simulated recordings (`--robust`)
    /// or not: robust nets are the `robust` variant whatever their architecture.
    fn trained(self, robust: bool) -> Variant {
        if robust { Variant::Robust } else { self.nets() }
    }
    /// Parameter count of the three nets.
    fn parameters(self) -> usize {
        if self.nets() == Variant::Paper { PAPER_PARAMETERS } else { FAST_PARAMETERS }
    }
    /// Multiply-accumulates per pixel of (hide, reveal).
    fn macs_per_pixel(self) -> (u64, u64) {
        if self.nets() == Variant::Paper {
            (HIDE_MACS_PER_PIXEL, REVEAL_MACS_PER_PIXEL)
        } else {
            (FAST_HIDE_MACS_PER_PIXEL, FAST_REVEAL_MACS_PER_PIXEL)
        }
    }
    /// Height and width of the models' inputs must be multiples of this.
    fn size_multiple(self) -> usize {
        if self.nets() == Variant::Paper { 1 } else { FAST_BLOCK }
    }
    /// Description stored in the ONNX metadata.
    fn architecture(self) -> &'static str {
        if self.nets() == Variant::Paper { ARCHITECTURE } else { FAST_ARCHITECTURE }
    }
}

impl VariantNets for Variant {
    fn nets(self) -> Variant {
        match self {
            Variant::Paper => Variant::Paper,
            Variant::Fast | Variant::Robust => Variant::Fast,
        }
    }
}

/// The architecture of a checkpoint, from its weight names.
pub fn nets_of_weights(weights: &HashMap<String, Tensor>) -> Variant {
    if weights.contains_key("hide.conv0.weight") { Variant::Fast } else { Variant::Paper }
}

/// The values of `--arch`: the two architectures.
pub const ARCH_NAMES: [&str; 2] = ["paper", "fast"];

/// `--arch NAME`: `paper` or `fast`.
pub fn parse_arch(name: &str) -> std::result::Result<Variant, String> {
    Variant::from_name(name)
        .filter(|v| v.nets() == *v)
        .ok_or_else(|| format!("'{name}' is not an architecture: {}", ARCH_NAMES.join(" or ")))
}

/// The `arch` of `state.json`: the architecture's name, `paper` or `fast` (runs saved before
/// the field existed trained the paper nets).
pub mod arch_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use stego::Variant;

    pub fn serialize<S: Serializer>(v: &Variant, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Variant, D::Error> {
        let name = String::deserialize(d)?;
        super::parse_arch(&name).map_err(serde::de::Error::custom)
    }

    /// The nets of runs saved before the field existed.
    pub fn before_option() -> Variant {
        Variant::Paper
    }
}

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
        match self.output {
            HideOutput::Sigmoid => output_activation(&z),
            HideOutput::Residual => output_activation(&(cover_logit(cover)? + z)?),
        }
    }

    /// container → revealed secret.
    pub fn reveal(&self, container: &Tensor) -> Result<Tensor> {
        let x = space_to_depth(container, FAST_BLOCK)?;
        output_activation(&depth_to_space(&self.reveal_out.forward(&run_relu_convs(&self.reveal, &x)?)?, FAST_BLOCK)?)
    }
}

/// The nets of either architecture.
#[derive(Debug, Clone)]
pub enum Nets {
    Paper(PaperNets),
    Fast(FastNets),
}

impl Nets {
    /// The nets of `arch`, weights under `vb`.
    pub fn new(arch: Variant, vb: VarBuilder) -> Result<Self> {
        Ok(match arch.nets() {
            Variant::Paper => Nets::Paper(PaperNets::new(vb)?),
            _ => Nets::Fast(FastNets::new(vb)?),
        })
    }
    /// Nets of `arch` reading (detached copies of) the given weights: for inference, no
    /// autograd graph.
    pub fn from_tensors(arch: Variant, weights: &HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let detached: HashMap<String, Tensor> = weights.iter().map(|(k, v)| (k.clone(), v.detach())).collect();
        Self::new(arch, VarBuilder::from_tensors(detached, DType::F32, device))
    }
    /// Inference copy of the weights in `varmap` (detached).
    pub fn inference_from_varmap(arch: Variant, varmap: &VarMap, device: &Device) -> Result<Self> {
        Self::from_tensors(arch, &varmap_tensors(varmap), device)
    }
    /// The same nets with the hide net's output mode set.
    pub fn with_hide_output(self, output: HideOutput) -> Self {
        match self {
            Nets::Paper(n) => Nets::Paper(n.with_hide_output(output)),
            Nets::Fast(mut n) => {
                n.output = output;
                Nets::Fast(n)
            }
        }
    }
    /// (cover, secret) → container.
    pub fn hide(&self, cover: &Tensor, secret: &Tensor) -> Result<Tensor> {
        match self {
            Nets::Paper(n) => n.hide(cover, secret),
            Nets::Fast(n) => n.hide(cover, secret),
        }
    }
    /// container → revealed secret.
    pub fn reveal(&self, container: &Tensor) -> Result<Tensor> {
        match self {
            Nets::Paper(n) => n.reveal(container),
            Nets::Fast(n) => n.reveal(container),
        }
    }
}

/// The tensors of a [`VarMap`] by name (the checkpoint layout).
pub fn varmap_tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
    let data = varmap.data().lock().expect("varmap lock");
    data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect()
}

/// Creates the three nets in a fresh [`VarMap`] with weights drawn deterministically from
/// `seed`: PyTorch's default convolution init (uniform ±1/√fan_in for weights and biases,
/// i.e. Kaiming-uniform with a = √5).
pub fn init_nets(device: &Device, seed: u64) -> Result<(VarMap, PaperNets)> {
    match init_arch(Variant::Paper, device, seed)? {
        (v, Nets::Paper(n)) => Ok((v, n)),
        _ => unreachable!("Variant::Paper makes paper nets"),
    }
}

/// [`init_nets`] for either architecture.
pub fn init_arch(arch: Variant, device: &Device, seed: u64) -> Result<(VarMap, Nets)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    // The nets keep the Vars' tensors; `Var::set` updates their storage in place, so the
    // nets see the new values.
    let nets = Nets::new(arch, vb)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_1417);
    {
        let data = varmap.data().lock().expect("varmap lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        // fan_in of a bias = that of its weight.
        for name in names {
            let var = &data[name];
            let wname = name.strip_suffix(".bias").map(|p| format!("{p}.weight"));
            let fan_in = match wname {
                Some(w) => {
                    let d = data[&w].dims().to_vec();
                    d[1] * d[2] * d[3]
                }
                None => {
                    let d = var.dims();
                    d[1] * d[2] * d[3]
                }
            };
            let bound = 1.0 / (fan_in as f32).sqrt();
            let n = var.elem_count();
            let values: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
            var.set(&Tensor::from_vec(values, var.shape(), device)?)?;
        }
    }
    Ok((varmap, nets))
}

/// Total number of parameters in a weight map.
pub fn parameter_count(weights: &HashMap<String, Tensor>) -> usize {
    weights.values().map(|t| t.elem_count()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_parameter_count() {
        let (varmap, _) = init_nets(&Device::Cpu, 0).unwrap();
        let w = varmap_tensors(&varmap);
        assert_eq!(parameter_count(&w), PAPER_PARAMETERS);
        // 2 + 5 + 5 blocks × 3 convs × (weight, bias) + 2 output convs × 2.
        assert_eq!(w.len(), 12 * 6 + 4);
        assert_eq!(w["hide.block0.conv4.weight"].dims(), &[10, 68, 4, 4]);
        assert_eq!(w["reveal.out.weight"].dims(), &[3, 65, 1, 1]);
    }

    #[test]
    fn fast_nets_count_shapes_and_space_to_depth() {
        let dev = Device::Cpu;
        let (varmap, nets) = init_arch(Variant::Fast, &dev, 1).unwrap();
        let w = varmap_tensors(&varmap);
        assert_eq!(parameter_count(&w), FAST_PARAMETERS);
        assert_eq!(nets_of_weights(&w), Variant::Fast);
        assert_eq!(w["hide.conv0.weight"].dims(), &[80, 96, 3, 3]);
        assert_eq!(w["reveal.out.weight"].dims(), &[48, 80, 1, 1]);
        let x = Tensor::rand(0f32, 1f32, (2, 3, 8, 12), &dev).unwrap();
        // ONNX SpaceToDepth order: channel (by*4 + bx)*3 + c at cell (i, j) is x[c, 4i+by, 4j+bx].
        let s = space_to_depth(&x, 4).unwrap();
        assert_eq!(s.dims(), &[2, 48, 2, 3]);
        let (by, bx, c, i, j) = (2, 3, 1, 1, 2);
        let a = s.get(1).unwrap().get((by * 4 + bx) * 3 + c).unwrap().get(i).unwrap().get(j).unwrap().to_scalar::<f32>().unwrap();
        let b = x.get(1).unwrap().get(c).unwrap().get(4 * i + by).unwrap().get(4 * j + bx).unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(a, b);
        let back = depth_to_space(&s, 4).unwrap();
        let d = (back - &x).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0);
        let c = nets.hide(&x, &x).unwrap();
        assert_eq!(c.dims(), &[2, 3, 8, 12]);
        assert_eq!(nets.reveal(&c).unwrap().dims(), &[2, 3, 8, 12]);
    }

    #[test]
    fn init_is_deterministic_and_shapes_hold() {
        let dev = Device::Cpu;
        let (a, nets) = init_nets(&dev, 3).unwrap();
        let (b, _) = init_nets(&dev, 3).unwrap();
        let (wa, wb) = (varmap_tensors(&a), varmap_tensors(&b));
        for (k, t) in &wa {
            assert_eq!(t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), wb[k].flatten_all().unwrap().to_vec1::<f32>().unwrap());
        }
        let x = Tensor::rand(0f32, 1f32, (2, 3, 7, 9), &dev).unwrap();
        let c = nets.hide(&x, &x).unwrap();
        assert_eq!(c.dims(), &[2, 3, 7, 9]);
        let r = nets.reveal(&c).unwrap();
        assert_eq!(r.dims(), &[2, 3, 7, 9]);
        let v = r.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
    }
}
