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
//! One flat `name → tensor` map (a [`VarMap`](candle_nn::VarMap) while training, `checkpoint.safetensors` on
//! disk), read back as is by the ONNX exporter:
//!
//! ```text
//! prep.block{0,1}.conv{3,4,5}.{weight,bias}       weight [Cout, Cin, k, k], bias [Cout]
//! hide.block{0..4}.conv{3,4,5}.{weight,bias}
//! hide.out.{weight,bias}                          weight [3, 65, 1, 1]
//! reveal.block{0..4}.conv{3,4,5}.{weight,bias}
//! reveal.out.{weight,bias}
//! ```

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::{CHANNELS, Conv, HideOutput, output_activation};
use crate::fastconv;
use crate::onnx::{GraphBuilder, int_attr};

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

/// Short human-readable description, stored in the ONNX metadata.
pub const ARCHITECTURE: &str = "Baluja 2017 paper nets: aggregated block = relu(concat(conv3x3 x50, \
conv4x4 x10, conv5x5 x5)), 'same' padding (4x4: 1 before, 2 after); prep = 2 blocks on the \
secret; hide = 5 blocks on concat(cover, prep) + conv1x1 to 3 + sigmoid; reveal = 5 blocks + \
conv1x1 to 3 + sigmoid; 485541 parameters in all";


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
        self.output.apply(cover, &z)
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


// ----- ONNX -----------------------------------------------------------------------------------

impl GraphBuilder<'_> {
    /// [`AggregatedBlock`] `prefix` on `x`.
    fn block(&mut self, x: &str, prefix: &str) -> anyhow::Result<String> {
        let mut outs = Vec::new();
        for (k, _) in BRANCHES {
            outs.push(self.conv(x, &format!("{prefix}.conv{k}"), None)?);
        }
        let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        let cat = self.node("Concat", &refs, None, vec![int_attr("axis", 1)]);
        Ok(self.node("Relu", &[&cat], None, vec![]))
    }

    /// `n` blocks `{net}.block{i}` on `x`.
    fn blocks(&mut self, x: &str, net: &str, n: usize) -> anyhow::Result<String> {
        let mut x = x.to_string();
        for i in 0..n {
            x = self.block(&x, &format!("{net}.block{i}"))?;
        }
        Ok(x)
    }
}

/// [`PaperNets::hide`] in the graph, up to the output convolution: its `z`.
pub(crate) fn onnx_hide(g: &mut GraphBuilder, cover: &str, secret: &str) -> anyhow::Result<String> {
    let prepared = g.blocks(secret, "prep", PREP_BLOCKS)?;
    let cat = g.node("Concat", &[cover, &prepared], None, vec![int_attr("axis", 1)]);
    let x = g.blocks(&cat, "hide", HIDE_BLOCKS)?;
    g.conv(&x, "hide.out", None)
}

/// [`PaperNets::reveal`] in the graph, up to the output convolution: its `z`.
pub(crate) fn onnx_reveal(g: &mut GraphBuilder, container: &str) -> anyhow::Result<String> {
    let x = g.blocks(container, "reveal", REVEAL_BLOCKS)?;
    g.conv(&x, "reveal.out", None)
}
