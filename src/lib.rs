//! # stego — deep steganography for live video
//!
//! Baluja's "Hiding Images in Plain Sight: Deep Steganography" (NIPS 2017): a preparation net
//! and a hiding net turn (cover, secret) into a container that looks like the cover; a reveal
//! net recovers the secret from the container.
//!
//! This library is the runtime shared by the `stego` CLI and the GStreamer elements:
//! - [`contract`]: the models' input/output names, layout and metadata;
//! - [`runtime`]: finding the models and onnxruntime (the search order is in its docs), loading
//!   them, execution providers;
//! - [`frame`]: the one frame ↔ tensor conversion (packed RGB/BGR formats, strides, resizing);
//! - [`pipeline`]: [`Hider`] and [`Revealer`], frame in, frame out;
//! - [`metrics`]: APD, PSNR, SSIM;
//! - [`lsb`]: least-significant-bit substitution, the baseline beside the models' figures;
//! - `image_io` (feature `image`, which the `cli` feature enables): still PNG and JPEG images
//!   with clear errors and safe writes;
//! - `codec` (feature `codec`, which `cli` enables): real recordings (x264, JPEG) through
//!   GStreamer, to measure what they leave of a secret;
//! - [`fsio`]: writing output files: atomic replace for files, streams for FIFOs, devices and `-`.
//!
//! Cargo features: `cli` (the `stego` tool, default), `image` (`image_io`; `cli` enables it),
//! `codec` (`codec`, GStreamer; `cli` enables it),
//! `ndarray` ([`Model::run`] on `ndarray` arrays, default), `bench-support`
//! (`frame::bench_support`, default; for the benchmarks and tests). The GStreamer plugin uses
//! none of them.
//!
//! ```no_run
//! use stego::{Hider, RuntimeOptions, Variant, contract::Role, frame::{Frame, FrameMut, PixelFormat}};
//! # fn main() -> Result<(), stego::Error> {
//! let opts = RuntimeOptions::default();
//! let model = stego::resolve_model(None, Variant::default(), Role::Hide)?;
//! let mut hider = Hider::new(&model, &opts)?;
//! let (w, h) = (64, 48);
//! let cover = vec![100u8; w * h * 3];
//! let secret = vec![200u8; 32 * 32 * 3];
//! let mut container = vec![0u8; w * h * 3];
//! hider.hide(
//!     &Frame::packed(&cover, PixelFormat::Rgb, w, h)?,
//!     &Frame::packed(&secret, PixelFormat::Rgb, 32, 32)?,
//!     &mut FrameMut::packed(&mut container, PixelFormat::Rgb, w, h)?,
//! )?;
//! # Ok(()) }
//! ```

#[cfg(feature = "codec")]
pub mod codec;
pub mod contract;
pub mod error;
pub mod eval;
pub mod frame;
pub mod fsio;
#[cfg(feature = "image")]
pub mod image_io;
pub mod lsb;
pub mod metrics;
pub mod pipeline;
pub mod runtime;

pub use contract::Variant;
pub use error::{Error, Result};
pub use pipeline::{Hider, Revealer};
pub use runtime::{ExecutionProvider, Model, RuntimeOptions, resolve_model};
