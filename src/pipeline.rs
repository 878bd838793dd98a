//! Frame-level hiding and revealing: the part shared by the CLI and the GStreamer elements.

use crate::contract::Role;
use crate::error::{Error, Result};
use crate::frame::{Converter, Frame, FrameMut, SecretFit, check_size, planar_to_frame, try_zeroed};
use crate::runtime::{Model, RuntimeOptions};
use std::path::Path;

/// Runs `f` on a mid-grey RGB input frame and an output frame of `width x height` (warm-up).
fn with_grey_frames(width: usize, height: usize, f: impl FnOnce(&Frame, &mut FrameMut) -> Result<()>) -> Result<()> {
    check_size(width, height)?;
    let mut data = try_zeroed::<u8>(width * height * 3, "the warm-up frame")?;
    data.fill(128);
    let input = Frame::packed(&data, crate::frame::PixelFormat::Rgb, width, height)?;
    let mut out = try_zeroed::<u8>(width * height * 3, "the warm-up output")?;
    f(&input, &mut FrameMut::packed(&mut out, crate::frame::PixelFormat::Rgb, width, height)?)
}

fn padded(v: usize, m: usize) -> usize {
    v.div_ceil(m) * m
}

/// Hides secret frames in cover frames.
#[derive(Debug)]
pub struct Hider {
    model: Model,
    cover_conv: Converter,
    secret_conv: Converter,
    secret_fit: SecretFit,
}

impl Hider {
    /// Loads the hiding model at `path`.
    pub fn new(path: &Path, options: &RuntimeOptions) -> Result<Self> {
        Ok(Hider { model: Model::load(path, Role::Hide, options)?, cover_conv: Converter::new(), secret_conv: Converter::new(), secret_fit: SecretFit::default() })
    }
    /// The underlying model (provider, metadata).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// How a secret of another size or aspect is brought to the cover's (default: [`SecretFit::Fit`]).
    pub fn set_secret_fit(&mut self, fit: SecretFit) {
        self.secret_fit = fit;
    }
    pub fn secret_fit(&self) -> SecretFit {
        self.secret_fit
    }

    /// Runs the model once at `width x height` so that the first real frame is not slow
    /// (allocations, kernel selection).
    pub fn warm_up(&mut self, width: usize, height: usize) -> Result<()> {
        with_grey_frames(width, height, |f, o| self.hide(f, f, o))
    }

    /// Writes into `out` (the cover's size) the container hiding `secret` in `cover`. A secret of
    /// another size is brought to the cover's as [`Hider::set_secret_fit`] says. The container is rounded to
    /// 8 bits; RGBA/BGRA alpha comes from the cover.
    pub fn hide(&mut self, cover: &Frame, secret: &Frame, out: &mut FrameMut) -> Result<()> {
        let (w, h) = (cover.width(), cover.height());
        if out.width() != w || out.height() != h {
            return Err(Error::FrameSize { width: out.width(), height: out.height(), reason: format!("the output must have the cover's size {w}x{h}") });
        }
        let m = self.model.size_multiple();
        let (tw, th) = (padded(w, m), padded(h, m));
        let plane = 3 * tw * th;
        let (cc, sc, fit) = (&mut self.cover_conv, &mut self.secret_conv, self.secret_fit);
        self.model.run_with(
            [1, 3, th, tw],
            |inputs| {
                cc.to_tensor(cover, w, h, &mut inputs[0][..plane], tw, th)?;
                sc.to_tensor_fit(secret, w, h, fit, &mut inputs[1][..plane], tw, th)
            },
            |container| planar_to_frame(container, tw, th, out, Some(cover)),
        )
    }
}

/// Reveals secret frames from container frames.
#[derive(Debug)]
pub struct Revealer {
    model: Model,
    conv: Converter,
}

impl Revealer {
    /// Loads the reveal model at `path`.
    pub fn new(path: &Path, options: &RuntimeOptions) -> Result<Self> {
        Ok(Revealer { model: Model::load(path, Role::Reveal, options)?, conv: Converter::new() })
    }
    pub fn model(&self) -> &Model {
        &self.model
    }
    /// Runs the model once at `width x height`.
    pub fn warm_up(&mut self, width: usize, height: usize) -> Result<()> {
        with_grey_frames(width, height, |f, o| self.reveal(f, o))
    }

    /// Writes the revealed secret of `container` into `out` (same size), rounded to 8 bits.
    pub fn reveal(&mut self, container: &Frame, out: &mut FrameMut) -> Result<()> {
        let (w, h) = (container.width(), container.height());
        if out.width() != w || out.height() != h {
            return Err(Error::FrameSize { width: out.width(), height: out.height(), reason: format!("the output must have the container's size {w}x{h}") });
        }
        let m = self.model.size_multiple();
        let (tw, th) = (padded(w, m), padded(h, m));
        let conv = &mut self.conv;
        self.model.run_with(
            [1, 3, th, tw],
            |inputs| conv.to_tensor(container, w, h, &mut inputs[0][..], tw, th),
            |revealed| planar_to_frame(revealed, tw, th, out, None),
        )
    }
}
