// SPDX-License-Identifier: MIT OR Apache-2.0

/**
 * SECTION:element-stegoreveal
 *
 * Recovers the secret video that `stegohide` hid in a container video, with the reveal
 * network of "Hiding Images in Plain Sight: Deep Steganography" (Baluja, NIPS 2017).
 * The output has the container's size, format and timing.
 *
 * Takes packed 8-bit RGB, RGBA, RGBx, BGR, BGRA and BGRx (put `videoconvert` before it for
 * other formats). With the `fast` and `paper` variants the container must reach it losslessly
 * (raw video, FFV1 from RGB, PNG): the hidden signal lives in small pixel differences that
 * lossy compression removes. Containers of the `robust` variant may come through x264 or JPEG
 * in I420; the secret is then a rough likeness (about 19–23 dB PSNR at x264enc `pass=qual`
 * quantizer 23–18, 24 dB at a constant `pass=quant quantizer=23`).
 *
 * The reveal model is the `variant`'s file: `fast` (the
 * default: the real-time nets, `reveal-fast.onnx`), `robust` (`reveal-robust.onnx`) or
 * `paper` (Baluja's nets, `reveal.onnx`, ~30× slower); it must match the model that hid the secret. Setting `model-file` loads
 * that file instead, whatever the variant; reading `model-file` gives the file that will be
 * loaded. These and `execution-provider`, `device` and `threads` change in the NULL and
 * READY states only: while PAUSED or PLAYING a new value is refused with a warning on the bus.
 *
 * When `model-file` is not set, the model is the `variant`'s file, looked for when the element
 * starts: in `STEGO_MODEL_DIR` when set, else in `models/` of the installed layout (`STEGO_HOME`,
 * or a folder above the plugin's file, such as the checkout holding `target/release/`), else in
 * `/usr/local/share/stego/models` and `/usr/share/stego/models`. onnxruntime is found the same
 * way: `ORT_DYLIB_PATH`, else `.ort/gpu/` or `.ort/cpu/` of the installed layout, else the
 * system's library folders.
 *
 * A model that cannot be loaded or run at the negotiated size (out of memory, a wrong
 * `size_multiple`) or a video larger than 8192x8192 pixels in all is an element error with
 * its cause, and the pipeline stops.
 *
 * ## Example launch line
 * ```shell
 * gst-launch-1.0 stegohide name=h ! tee name=t \
 *     t. ! queue ! videoconvert ! autovideosink \
 *     t. ! queue ! stegoreveal ! videoconvert ! autovideosink \
 *     videotestsrc ! video/x-raw,format=RGB,width=320,height=240 ! h.cover \
 *     videotestsrc pattern=ball ! video/x-raw,format=RGB,width=320,height=240 ! h.secret
 * ```
 * Revealing an FFV1 recording made with the paper models (`stegohide variant=paper`):
 * ```shell
 * gst-launch-1.0 filesrc location=hidden.mkv ! matroskademux ! avdec_ffv1 ! videoconvert ! \
 *     stegoreveal variant=paper ! videoconvert ! autovideosink
 * ```
 */
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct StegoReveal(ObjectSubclass<imp::StegoReveal>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "stegoreveal",
        gst::Rank::NONE,
        StegoReveal::static_type(),
    )
}
