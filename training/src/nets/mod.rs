//! The nets, each in candle beside the ONNX graph it exports to:
//!
//! * [`paper`]: the three networks of Baluja (NIPS 2017), [`PaperNets`];
//! * [`fast`]: the real-time nets on 4×4 cells, [`FastNets`] (also the `robust` variant's).
//!
//! Shared here: the convolution layer, the hide nets' output ([`HideOutput`]), what training
//! needs to know of each [`Variant`]'s nets ([`VariantNets`]), and the weights' initialisation.
//!
//! # Weight names
//!
//! One flat `name → tensor` map (a [`VarMap`] while training, `checkpoint.safetensors` on
//! disk), read back as is by the ONNX exporter; the names are listed in each net's module.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stego::Variant;

use crate::fastconv;
use crate::onnx::{GraphBuilder, int_attr, ints_attr};

pub mod fast;
pub mod paper;

pub use fast::*;
pub use paper::*;

/// Colour channels of images.
pub const CHANNELS: usize = 3;

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
    /// A learned code written into the pixel values (fast nets only): the hide net puts out
    /// values that are written as base-[`MODULUS`] digits, one per subpixel ([`CODE_GROUPS`]);
    /// the container is the 8-bit cover moved by at most ±4 levels to a value that is that
    /// digit modulo [`MODULUS`] ([`modular_embed`]), and the reveal net reads the container's
    /// values modulo [`MODULUS`] ([`modular_residues`]). log2(9) = 3.17 bits per subpixel at
    /// a mean change of 2.2 levels whatever the secret, so the nets only learn to code the
    /// secret into the digits and back; the secret survives lossless recordings only.
    Modular,
}

/// Symbols per subpixel of [`HideOutput::Modular`].
pub const MODULUS: f64 = 9.0;

/// `v − M·⌊v/M⌋` (no gradient).
pub(crate) fn modulo(v: &Tensor) -> Result<Tensor> {
    Ok((v - (v / MODULUS)?.floor()?.affine(MODULUS, 0.0)?)?.detach())
}

/// The container of [`HideOutput::Modular`]: the cover's 8-bit value `c` moved to the value
/// that is `q` modulo [`MODULUS`] in `b..b+8`, `b = clamp(c − 4, 0, 247)`: at most 4 levels
/// away (8 next to 0 and 255). The gradient reaches `q` straight through (the reveal side
/// reads `q` back exactly).
pub fn modular_embed(cover: &Tensor, q: &Tensor) -> Result<Tensor> {
    let half = (MODULUS - 1.0) / 2.0;
    let c = cover.affine(255.0, 0.0)?.round()?.detach();
    let base = c.affine(1.0, -half)?.clamp(0f32, (255.0 - (MODULUS - 1.0)) as f32)?;
    let qd = q.detach();
    let x = (&base + modulo(&(&qd - &base)?)?)?;
    (q + (x - &qd)?.detach())?.affine(1.0 / 255.0, 0.0)
}

/// What the reveal net of [`HideOutput::Modular`] reads: the container's 8-bit values modulo
/// [`MODULUS`] (0..M−1, straight-through gradient).
pub fn modular_residues(container: &Tensor) -> Result<Tensor> {
    let x = container.affine(255.0, 0.0)?;
    let r = modulo(&x.round()?)?;
    &x + (r - &x)?.detach()
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
            HideOutput::Modular => "modular",
        }
    }
}

impl HideOutput {
    /// The container from the hide net's last convolution `z` (the fast nets form a
    /// [`HideOutput::Modular`] container themselves, from their digits).
    pub fn apply(self, cover: &Tensor, z: &Tensor) -> Result<Tensor> {
        match self {
            HideOutput::Sigmoid => output_activation(z),
            HideOutput::Residual => output_activation(&(cover_logit(cover)? + z)?),
            HideOutput::Modular => candle_core::bail!("the modular output is the fast nets' digit code, not a function of z"),
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

impl GraphBuilder<'_> {
    /// [`Conv`] in the graph: a convolution with Keras-'same' padding, weights
    /// `{prefix}.weight`/`{prefix}.bias`.
    pub(crate) fn conv(&mut self, x: &str, prefix: &str, output: Option<&str>) -> anyhow::Result<String> {
        let wname = format!("{prefix}.weight");
        let bname = format!("{prefix}.bias");
        let dims = self.weight(&wname)?.dims().to_vec();
        if dims.len() != 4 || dims[2] != dims[3] {
            anyhow::bail!("{wname}: expected a square [Cout, Cin, k, k] kernel, got {dims:?}");
        }
        let b = self.weight(&bname)?;
        if b.dims() != [dims[0]] {
            anyhow::bail!("{bname}: shape {:?}, expected [{}]", b.dims(), dims[0]);
        }
        let k = dims[2];
        let [top, bottom, left, right] = fastconv::same_pad(k).map(|p| p as i64);
        let attrs = vec![
            ints_attr("kernel_shape", &[k as i64, k as i64]),
            // ONNX order: [x1_begin, x2_begin, x1_end, x2_end] = [top, left, bottom, right].
            ints_attr("pads", &[top, left, bottom, right]),
            ints_attr("strides", &[1, 1]),
            ints_attr("dilations", &[1, 1]),
            int_attr("group", 1),
        ];
        Ok(self.node("Conv", &[x, &wname, &bname], output, attrs))
    }

    /// `v − M·⌊v/M⌋` in the graph (float32; exact for integers: `Div` rounds correctly, and
    /// onnxruntime's `Mod` for floats is several times slower).
    pub(crate) fn modulo(&mut self, v: &str) -> String {
        self.scalar_once("modular.m", MODULUS as f32);
        let q = self.node("Div", &[v, "modular.m"], None, vec![]);
        let f = self.node("Floor", &[&q], None, vec![]);
        let k = self.node("Mul", &[&f, "modular.m"], None, vec![]);
        self.node("Sub", &[v, &k], None, vec![])
    }

    /// [`modular_embed`] in the graph: symbols `q` (float32, 0..M−1) into the cover, as
    /// `q + M·round((r − q)/M)` with `r` the cover's 8-bit value clamped to `[h, 255 − h]`,
    /// `h = (M−1)/2`: the value ≡ q (mod M) in `r−h..=r+h`, which is the candle form's
    /// `b..b+M−1` (`b = r − h`), in fewer whole-frame operations (`(r − q)/M` is never half
    /// way between integers: M is odd).
    pub(crate) fn modular_embed_symbols(&mut self, cover: &str, q: &str, container: &str) {
        let half = (MODULUS - 1.0) / 2.0;
        self.scalar_once("modular.255", 255.0);
        self.scalar_once("modular.low", half as f32);
        self.scalar_once("modular.high", (255.0 - half) as f32);
        self.scalar_once("modular.m", MODULUS as f32);
        self.scalar_once("modular.inv_m", (1.0 / MODULUS) as f32);
        let c = self.node("Mul", &[cover, "modular.255"], None, vec![]);
        let c = self.node("Round", &[&c], None, vec![]);
        let r = self.node("Clip", &[&c, "modular.low", "modular.high"], None, vec![]);
        let d = self.node("Sub", &[&r, q], None, vec![]);
        let d = self.node("Mul", &[&d, "modular.inv_m"], None, vec![]);
        let k = self.node("Round", &[&d], None, vec![]);
        let k = self.node("Mul", &[&k, "modular.m"], None, vec![]);
        let x = self.node("Add", &[q, &k], None, vec![]);
        self.node("Div", &[&x, "modular.255"], Some(container), vec![]);
    }

    /// The container's 8-bit values modulo [`MODULUS`] (float32, 0..M−1).
    pub(crate) fn modular_residues(&mut self, container: &str) -> String {
        self.scalar_once("modular.255", 255.0);
        let x = self.node("Mul", &[container, "modular.255"], None, vec![]);
        let x = self.node("Round", &[&x], None, vec![]);
        self.modulo(&x)
    }

    /// [`HideOutput::apply`] in the graph: the float32 logits `z` of a hide net into the
    /// container (the `cover` input).
    pub(crate) fn hide_output(&mut self, output: HideOutput, cover: &str, z: &str, container: &str) -> anyhow::Result<()> {
        if output == HideOutput::Modular {
            anyhow::bail!("the modular output is the fast nets' digit code, not a function of z");
        }
        let mut logits = z.to_string();
        if output == HideOutput::Residual {
            // logit(ε + (1 − 2ε)·cover) + z, as cover_logit.
            self.scalar("residual.scale", 1.0 - 2.0 * RESIDUAL_EPS);
            self.scalar("residual.eps", RESIDUAL_EPS);
            self.scalar("residual.one", 1.0);
            let scaled = self.node("Mul", &[cover, "residual.scale"], None, vec![]);
            let c = self.node("Add", &[&scaled, "residual.eps"], None, vec![]);
            let one_minus = self.node("Sub", &["residual.one", &c], None, vec![]);
            let ratio = self.node("Div", &[&c, &one_minus], None, vec![]);
            let logit = self.node("Log", &[&ratio], None, vec![]);
            logits = self.node("Add", &[&logit, &logits], None, vec![]);
        }
        self.node("Sigmoid", &[&logits], Some(container), vec![]);
        Ok(())
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
    /// Parameter count of the nets: fast nets of `layout` ([`fast_convs`]), with the digit
    /// code of [`HideOutput::Modular`] when `modular` (its hide output and reveal input have
    /// [`CODE_VALUES`] channels, not 48).
    fn parameters(self, layout: FastLayout, modular: bool) -> usize {
        if self.nets() == Variant::Paper { PAPER_PARAMETERS } else { fast_parameters(layout, modular) }
    }
    /// Multiply-accumulates per pixel of (hide, reveal), nets as in [`VariantNets::parameters`].
    fn macs_per_pixel(self, layout: FastLayout, modular: bool) -> (u64, u64) {
        if self.nets() == Variant::Paper {
            return (HIDE_MACS_PER_PIXEL, REVEAL_MACS_PER_PIXEL);
        }
        fast_macs_per_pixel(layout, modular)
    }
    /// Height and width of the models' inputs must be multiples of this.
    fn size_multiple(self, layout: FastLayout) -> usize {
        match (self.nets(), layout.context) {
            (Variant::Paper, _) => 1,
            (_, false) => FAST_BLOCK,
            (_, true) => CONTEXT_BLOCK,
        }
    }
    /// Description stored in the ONNX metadata, nets as in [`VariantNets::parameters`].
    fn architecture(self, layout: FastLayout, modular: bool) -> String {
        if self.nets() == Variant::Paper {
            return ARCHITECTURE.to_string();
        }
        let base = if modular { modular_architecture(layout) } else { FAST_ARCHITECTURE.to_string() };
        format!("{base}{}", if layout.context { CONTEXT_ARCHITECTURE } else { "" })
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

/// Whether the fast nets of a checkpoint write the digit code of [`HideOutput::Modular`],
/// from its shapes.
pub fn modular_of_weights(weights: &HashMap<String, Tensor>) -> bool {
    weights.get("hide.out.weight").is_some_and(|w| w.dims()[0] == CODE_VALUES)
}

/// The [`FastLayout`] of a checkpoint's fast nets, from its weight names and shapes.
pub fn layout_of_weights(weights: &HashMap<String, Tensor>) -> FastLayout {
    FastLayout {
        context: weights.contains_key(CONTEXT_MARKER),
        slim: weights.get("hide.conv0.weight").is_some_and(|w| reads_secret_alone(w.dims())),
    }
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

/// The nets of either architecture.
#[derive(Debug, Clone)]
pub enum Nets {
    Paper(PaperNets),
    Fast(FastNets),
}

impl Nets {
    /// The nets of `arch` (fast nets of `layout`), weights under `vb`.
    pub fn new(arch: Variant, layout: FastLayout, vb: VarBuilder) -> Result<Self> {
        Self::with_output(arch, layout, HideOutput::default(), vb)
    }
    /// [`Nets::new`] forming the container as `output` says (the shapes of fast nets depend on
    /// it: [`CODE_GROUPS`]).
    pub fn with_output(arch: Variant, layout: FastLayout, output: HideOutput, vb: VarBuilder) -> Result<Self> {
        Ok(match arch.nets() {
            Variant::Paper => Nets::Paper(PaperNets::new(vb)?).with_hide_output(output),
            _ => Nets::Fast(FastNets::new(vb, layout, output)?),
        })
    }
    /// Nets of `arch` reading (detached copies of) the given weights: for inference, no
    /// autograd graph.
    pub fn from_tensors(arch: Variant, weights: &HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let detached: HashMap<String, Tensor> = weights.iter().map(|(k, v)| (k.clone(), v.detach())).collect();
        let output = if modular_of_weights(weights) { HideOutput::Modular } else { HideOutput::default() };
        Self::with_output(arch, layout_of_weights(weights), output, VarBuilder::from_tensors(detached, DType::F32, device))
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
    /// How the hide net forms the container.
    pub fn hide_output(&self) -> HideOutput {
        match self {
            Nets::Paper(n) => n.hide.output,
            Nets::Fast(n) => n.output,
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
    match init_arch(Variant::Paper, FastLayout::default(), device, seed)? {
        (v, Nets::Paper(n)) => Ok((v, n)),
        _ => unreachable!("Variant::Paper makes paper nets"),
    }
}

/// [`init_nets`] for either architecture (fast nets of `layout`; the last convolutions of
/// their [`Context`] branches start at zero).
pub fn init_arch(arch: Variant, layout: FastLayout, device: &Device, seed: u64) -> Result<(VarMap, Nets)> {
    init_nets_with(arch, layout, HideOutput::default(), device, seed)
}

/// [`init_arch`] for nets that form the container as `output` says.
pub fn init_nets_with(arch: Variant, layout: FastLayout, output: HideOutput, device: &Device, seed: u64) -> Result<(VarMap, Nets)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    // The nets keep the Vars' tensors; `Var::set` updates their storage in place, so the
    // nets see the new values.
    let nets = Nets::with_output(arch, layout, output, vb)?;
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
            let bound = if context_zero_init(name) { 0.0 } else { 1.0 / (fan_in as f32).sqrt() };
            let n = var.elem_count();
            let values: Vec<f32> = (0..n).map(|_| if bound > 0.0 { rng.random_range(-bound..bound) } else { 0.0 }).collect();
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
    fn pooled_secret_weights_read_the_secret_averaged_over_blocks() {
        let dev = Device::Cpu;
        let max_diff = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let cover = Tensor::rand(0f32, 1f32, (1, 3, 16, 24), &dev).unwrap();
        let secret = Tensor::rand(0f32, 1f32, (1, 3, 16, 24), &dev).unwrap();
        for (layout, output) in [(FastLayout::default(), HideOutput::Residual), (FastLayout { slim: true, ..FastLayout::default() }, HideOutput::Modular)] {
            let (varmap, nets) = init_nets_with(Variant::Fast, layout, output, &dev, 3).unwrap();
            for pool in [2, 4] {
                let averaged = secret.avg_pool2d(pool).unwrap().upsample_nearest2d(16, 24).unwrap();
                let w = varmap.data().lock().unwrap()["hide.conv0.weight"].clone();
                let original = w.as_tensor().copy().unwrap();
                let pooled = fast::pool_secret_weights(&original, pool).unwrap();
                // The cover's weights are left alone (full nets read cover channels first).
                let cover_c = original.dim(1).unwrap() - 48;
                if cover_c > 0 {
                    assert_eq!(max_diff(&pooled.narrow(1, 0, cover_c).unwrap(), &original.narrow(1, 0, cover_c).unwrap()), 0.0);
                }
                let before = nets.hide(&cover, &averaged).unwrap();
                w.set(&pooled).unwrap();
                // On an averaged secret the pooled weights compute what the originals did ...
                assert!(max_diff(&nets.hide(&cover, &averaged).unwrap(), &before) < 1e-5);
                // ... and on any secret what they compute on the averaged one.
                assert!(max_diff(&nets.hide(&cover, &secret).unwrap(), &before) < 1e-5);
                assert!(max_diff(&fast::pool_secret_weights(&pooled, pool).unwrap(), &pooled) < 1e-7);
                w.set(&original).unwrap();
            }
        }
        assert!(fast::pool_secret_weights(&Tensor::zeros((8, 48, 3, 3), DType::F32, &dev).unwrap(), 3).is_err());
    }

    #[test]
    fn a_grey_output_moves_red_green_and_blue_alike() {
        let dev = Device::Cpu;
        let (varmap, nets) = init_nets_with(Variant::Fast, FastLayout::default(), HideOutput::Residual, &dev, 5).unwrap();
        let data = varmap.data().lock().unwrap();
        let (w, b) = (&data["hide.out.weight"], &data["hide.out.bias"]);
        let (gw, gb) = fast::grey_output(w.as_tensor(), b.as_tensor()).unwrap();
        w.set(&gw).unwrap();
        b.set(&(gb + 0.5).unwrap()).unwrap();
        // A mid-grey cover (the sigmoid's slope is the same for the three colours there).
        let cover = Tensor::full(0.5f32, (1, 3, 8, 12), &dev).unwrap();
        let secret = Tensor::rand(0f32, 1f32, (1, 3, 8, 12), &dev).unwrap();
        let d = (nets.hide(&cover, &secret).unwrap() - &cover).unwrap();
        let spread = (d.max_keepdim(1).unwrap() - d.min_keepdim(1).unwrap()).unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let size = d.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(size > 0.01 && spread < 1e-6, "change up to {size}, colours apart by {spread}");
        assert!(fast::grey_output(&Tensor::zeros((4, 8, 1, 1), DType::F32, &dev).unwrap(), &Tensor::zeros(4, DType::F32, &dev).unwrap()).is_err());
    }

    #[test]
    fn fast_nets_count_shapes_and_space_to_depth() {
        let dev = Device::Cpu;
        let (varmap, nets) = init_arch(Variant::Fast, FastLayout::default(), &dev, 1).unwrap();
        let w = varmap_tensors(&varmap);
        assert_eq!(parameter_count(&w), 284_656);
        assert_eq!(parameter_count(&w), Variant::Fast.parameters(FastLayout::default(), false));
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
    fn counts_of_the_fast_layouts() {
        let (plain, slim) = (FastLayout::default(), FastLayout { slim: true, ..FastLayout::default() });
        // The shipped digit-code nets and the slim ones, counted by hand from their shapes.
        assert_eq!(Variant::Fast.parameters(plain, true), 270_238);
        assert_eq!(Variant::Fast.macs_per_pixel(plain, true), (8_070, 8_790));
        assert_eq!(Variant::Fast.parameters(slim, true), 184_478);
        assert_eq!(Variant::Fast.macs_per_pixel(slim, true), (5_910, 5_590));
        // The description reads the same shapes.
        let full = Variant::Fast.architecture(plain, true);
        assert!(full.contains("hide = concat(s2d4(cover), s2d4(secret)) -> conv3x3 96->80 + relu -> conv3x3 80->80 + relu -> conv1x1 80->30 -> sigmoid"), "{full}");
        let described = Variant::Fast.architecture(slim, true);
        assert!(described.starts_with("stego slim fast nets"), "{described}");
        assert!(described.contains("hide = s2d4(secret) -> conv3x3 48->80 + relu -> conv3x3 80->80 + relu -> conv1x1 80->30 -> sigmoid"), "{described}");
        assert!(described.contains("conv3x3 30->80 + relu -> conv1x1 80->80 + relu -> conv3x3 80->80 + relu -> conv1x1 80->48 -> depth-to-space"), "{described}");
        let (varmap, nets) = init_nets_with(Variant::Fast, slim, HideOutput::Modular, &Device::Cpu, 1).unwrap();
        let w = varmap_tensors(&varmap);
        assert_eq!(parameter_count(&w), 184_478);
        assert_eq!(layout_of_weights(&w), slim);
        assert_eq!(w["hide.conv0.weight"].dims(), &[80, 48, 3, 3]);
        assert_eq!(w["reveal.conv1.weight"].dims(), &[80, 80, 1, 1]);
        // The slim hide net ignores the cover's content: only its base value moves the container.
        let secret = Tensor::rand(0f32, 1f32, (1, 3, 8, 8), &Device::Cpu).unwrap();
        let (c1, c2) = (Tensor::full(0.5f32, (1, 3, 8, 8), &Device::Cpu).unwrap(), Tensor::full(0.2f32, (1, 3, 8, 8), &Device::Cpu).unwrap());
        let r1 = nets.reveal(&nets.hide(&c1, &secret).unwrap()).unwrap();
        let r2 = nets.reveal(&nets.hide(&c2, &secret).unwrap()).unwrap();
        assert_eq!((r1 - r2).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
        let Err(refused) = init_nets_with(Variant::Fast, slim, HideOutput::Residual, &Device::Cpu, 1) else { panic!("slim nets need the digit code") };
        assert!(refused.to_string().contains("digit code"), "{refused}");
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

    /// Every cover value with every symbol: the container is an 8-bit value that is the symbol
    /// modulo 9, at most 4 levels away (8 where 0 or 255 is in the way), and the reveal side
    /// reads the symbol back with a straight-through gradient.
    #[test]
    fn modular_embedding_writes_and_reads_every_symbol() {
        let dev = Device::Cpu;
        let m = MODULUS as usize;
        let covers: Vec<f32> = (0..256).flat_map(|c| std::iter::repeat_n(c as f32 / 255.0, m)).collect();
        let qs: Vec<f32> = (0..256).flat_map(|_| (0..m).map(|q| q as f32)).collect();
        let n = covers.len();
        let cover = Tensor::from_vec(covers.clone(), (1, 1, 1, n), &dev).unwrap();
        let q = candle_core::Var::from_tensor(&Tensor::from_vec(qs.clone(), (1, 1, 1, n), &dev).unwrap()).unwrap();
        let container = modular_embed(&cover, q.as_tensor()).unwrap();
        let x = container.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for i in 0..n {
            let (c, v) = (covers[i] * 255.0, x[i] * 255.0);
            assert!((v - v.round()).abs() < 1e-3 && (0.0..=255.0).contains(&v.round()), "{c} {v}");
            let v = v.round();
            assert_eq!(v as usize % m, qs[i] as usize, "cover {c}, symbol {}", qs[i]);
            let limit = if (4.0..=251.0).contains(&c) { 4.0 } else { 8.0 };
            assert!((v - c.round()).abs() <= limit, "cover {c} -> {v}");
        }
        let read = modular_residues(&container).unwrap();
        let back = read.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for i in 0..n {
            assert!((back[i] - qs[i]).abs() < 1e-3, "{} vs {}", back[i], qs[i]);
        }
        let grads = read.sum_all().unwrap().backward().unwrap();
        let g = grads.get(q.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(g.iter().all(|&g| (g - 1.0).abs() < 1e-5), "{:?}", &g[..4]);
    }

    /// The digit code: values on 729, 81 and 9 levels written as base-9 digits and read back,
    /// the gradient passed straight through as 1.
    #[test]
    fn digit_code_round_trips_with_a_unit_gradient() {
        let dev = Device::Cpu;
        let v = candle_core::Var::from_tensor(&Tensor::rand(0f32, 1f32, (2, CODE_VALUES, 3, 5), &dev).unwrap()).unwrap();
        let d = encode_digits(v.as_tensor()).unwrap();
        assert_eq!(d.dims(), &[2, FAST_CELL, 3, 5]);
        let dv = d.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(dv.iter().all(|&x| x == x.round() && (0.0..MODULUS as f32).contains(&x)));
        let back = decode_digits(&d).unwrap();
        let (a, b) = (v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(), back.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let mut ch = 0;
        for (k, count) in CODE_GROUPS {
            let step = 1.0 / (MODULUS.powi(k as i32) - 1.0) as f32;
            for c in ch..ch + count {
                for i in 0..15 {
                    let (n, j) = (i / 15 * CODE_VALUES * 15, c * 15 + i % 15);
                    let (x, y) = (a[n + j], b[n + j]);
                    assert!((x - y).abs() <= step / 2.0 + 1e-6, "group of {k} digits: {x} -> {y}");
                }
            }
            ch += count;
        }
        let grads = back.sum_all().unwrap().backward().unwrap();
        let g = grads.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(g.iter().all(|&g| (g - 1.0).abs() < 1e-4), "{:?}", &g[..4]);
    }
}
