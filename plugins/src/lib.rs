// SPDX-License-Identifier: MIT OR Apache-2.0
#![allow(unused_doc_comments)]

//! GStreamer plugin `stego`: deep steganography for live video (Baluja, NIPS 2017).
//!
//! * `stegohide`: hides the video on its `secret` pad inside the video on its `cover` pad.
//! * `stegoreveal`: recovers the hidden video from a container video.
//!
//! The models, the onnxruntime session and the frame ↔ tensor conversion live in the `stego`
//! library; this crate only adapts them to GStreamer.

use gst::glib;

mod common;
mod stegohide;
mod stegoreveal;

pub use common::{ExecutionProvider, SecretEos, SecretFit, Variant};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    stegohide::register(plugin)?;
    stegoreveal::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    stego,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    // The origin: no public home to name, so where the plugin comes from.
    "stego (local build)",
    env!("BUILD_REL_DATE")
);
