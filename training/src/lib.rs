//! Training of the deep-steganography nets of Baluja, "Hiding Images in Plain Sight: Deep
//! Steganography" (NIPS 2017), in [candle](https://github.com/huggingface/candle), and their export to ONNX for the `stego` runtime.
//!
//! * [`nets`]: the nets, candle-examples style, each beside the ONNX graph it exports to:
//!   [`nets::paper`] (Baluja's prep, hide and reveal nets, 485,541 parameters) and
//!   [`nets::fast`] (the real-time nets).
//! * [`fastconv`]: the convolutions they run on (fast CPU path).
//! * [`optim`]: AdamW with saveable moments, warmup + cosine learning-rate schedule.
//! * [`data`]: image loading (Tiny ImageNet layout or any folder), random crops and flips.
//! * [`train`]: the training loop, checkpoints, resume, validation, figures, plots.
//! * [`csvlog`]: the run's CSV files (`metrics.csv`, `validation.csv`).
//! * [`onnx`]: the `hide.onnx` / `reveal.onnx` writer: protobuf messages, graph builder,
//!   metadata (the nets' graphs are in [`nets`]).
//!
//! # Usage
//!
//! ```text
//! cargo run --release -p training                    # train the fast nets with the defaults on data/images
//! cargo run --release -p training -- --steps 20000 --data /path/tiny-imagenet-200 --out runs/big
//! cargo run --release -p training -- --resume        # continue runs/default where it stopped
//! cargo run --release -p training -- --init-from runs/default --out runs/ft --max-side 0 --lr 1e-4   # fine-tune
//! cargo run --release -p training -- export --checkpoint runs/default --fp16   # into runs/default
//! cargo run --release -p training -- --help          # every option
//! ```
//!
//! A run folder holds `checkpoint.safetensors`, `optimizer.safetensors`, `state.json`,
//! `metrics.csv`, `validation.csv`, `loss.png`, `samples/` and, at the end, `hide.onnx` and
//! `reveal.onnx` (see [`train`]). Build with `--features cuda` to train on an NVIDIA GPU
//! (needs the CUDA toolkit); without it nothing needs CUDA.
//!
//! # Design choices
//!
//! **Output activation: sigmoid.** Container and revealed secret must lie in [0, 1] (the
//! contract in [`stego::contract`]). A sigmoid bounds them smoothly and keeps a gradient
//! everywhere; a clamp would have zero gradient for every pixel outside the range, and pixels
//! that saturate early would stop learning. ONNX has `Sigmoid`, so the exported graph computes
//! exactly what candle does.
//!
//! **Output layers 1×1.** The hide and reveal nets end with a 1×1 convolution to 3 channels:
//! that is what gives the paper's 485,541 parameters (a 3×3 output layer would give 488,661).
//!
//! **Loss.** `mean((C − C')²) + β · mean((S − S')²)` (per-pixel means). β defaults to 0.75,
//! the value of the paper's reference Keras implementation: the secret error counts a little
//! less than the cover error, so the container stays close to the cover. `--distance l1`
//! trains `mean(|C − C'|) + β · mean(|S − S'|)` instead: the quantity APD reports. Under L2 a
//! pixel's pull grows with its error, under L1 every pixel pulls alike, so the same balance
//! between cover and secret needs a larger β (about the ratio of secret to cover error).
//!
//! **8-bit container.** In the training path the container is rounded to 8 bits with a
//! straight-through gradient, `c + (round(255·c)/255 − c).detach()`, since that is what the
//! runtime gives the reveal net; then Gaussian noise (`--noise-std`, default 0.01 ≈ 2.5
//! levels of 255) is added before the reveal net so it tolerates small perturbations.
//! The cover loss is taken on the rounded container (what is actually sent).
//!
//! **Scales.** Photos are kept at up to `--max-side` pixels (0: their own size) with their
//! halvings ([`data::Pyramid`]); crops of log-uniform random side are read from the nearest
//! level, so a crop costs the same for a 12-megapixel photo as for a 512-pixel one, and the
//! nets see content both at the photo's own scale (what a full-size frame holds) and shrunk.
//!
//! **Determinism.** Weights are drawn from `--seed`; the batch, crops, flips and noise of
//! step `t` are drawn from a generator seeded by `(seed, t)`, so a resumed run draws the same
//! batches as an uninterrupted one.

pub mod codec;
pub mod csvlog;
pub mod data;
pub mod fastconv;
pub mod nets;
pub mod onnx;
pub mod optim;
pub mod plot;
pub mod train;

/// The device to train on: the first CUDA GPU when built with the `cuda` feature and one is
/// present, else the CPU.
pub fn default_device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    {
        if let Ok(d) = candle_core::Device::new_cuda(0) {
            return d;
        }
    }
    candle_core::Device::Cpu
}
