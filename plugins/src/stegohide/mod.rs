// SPDX-License-Identifier: MIT OR Apache-2.0

/**
 * SECTION:element-stegohide
 *
 * Hides the video arriving on the `secret` pad inside the video arriving on the `cover` pad
 * with the hiding network of "Hiding Images in Plain Sight: Deep Steganography"
 * (Baluja, NIPS 2017). The output, the container, has the cover's size, format and timing and
 * looks like the cover; `stegoreveal` recovers the secret from it.
 *
 * A secret of another size is scaled to the cover's as `secret-fit` says: `fit` (the default:
 * aspect kept, centred, black bars), `crop` (aspect kept, centre crop) or `stretch`; it may
 * change while playing. When the frame rates differ, each cover frame carries the secret frame
 * current at its time. When the secret ends first, `secret-eos` decides what follows; when the
 * cover ends, the output ends. Until the first secret frame arrives (or without a `secret`
 * pad, or with a `secret` pad that is still unlinked when the cover starts), the cover passes
 * through unchanged. A `secret` pad without a `cover` pad is an error.
 *
 * A cover of variable frame rate (`framerate=0/1`: a still from `pngdec`) gets output caps at
 * its `max-framerate`, else 25/1, as compositor does; the buffers keep the cover's timestamps.
 *
 * Errors stop the pipeline with the cause: a model that cannot be loaded or run at the
 * negotiated size (out of memory, a wrong `size_multiple`), a video larger than 8192x8192
 * pixels in all, a buffer smaller than its caps say. A cover whose pixels are mostly
 * saturated (a colour channel at 0 or 255: colour bars, blown highlights) posts one warning:
 * it cannot carry the secret well.
 *
 * The cover drives the output: exactly one container per cover frame, with that frame's
 * timestamps and duration; a missing cover frame is never filled in by repeating the last one.
 * A GAP on the cover becomes a GAP event downstream, not a frame. A GAP on the secret: with
 * `secret-eos=repeat` the last secret frame is hidden, otherwise the cover passes through; a
 * gap never ends the output.
 *
 * Both pads take packed 8-bit RGB, RGBA, RGBx, BGR, BGRA and BGRx (put `videoconvert` before
 * them for other formats). A frame's alpha passes through unchanged.
 *
 * Which recordings keep the secret depends on the variant. With `fast` (and `paper`) only a
 * lossless one: FFV1 fed RGB/BGRx (`videoconvert ! video/x-raw,format=BGRx ! avenc_ffv1 !
 * matroskamux`), PNG frames, or, nearly, x264 in 4:4:4 at quantizer 0; H.264 or JPEG in 4:2:0
 * (`format=I420`) destroys it (about 11 dB PSNR left), as does chroma subsampling anywhere on
 * the way. With `robust`, a rough likeness survives x264 in I420 (on 640x480 footage about
 * 23 dB with `pass=qual quantizer=18` or x264enc's defaults, 19 dB at 23, 14 dB at 28; 24 dB
 * at a constant `pass=quant quantizer=23`) and JPEG (23 dB at quality 90), at a visible cost
 * to the cover (about 33 dB).
 *
 * The hiding model is the `variant`'s file: `fast` (the
 * default: the real-time nets, `hide-fast.onnx`), `robust` (real-time nets trained through
 * simulated x264/JPEG recordings, `hide-robust.onnx`) or `paper` (Baluja's nets, `hide.onnx`,
 * ~30× slower). Setting `model-file` loads that file instead,
 * whatever the variant; reading `model-file` gives the file that will be loaded. These and
 * `execution-provider`, `device` and `threads` change in the NULL and READY states only: while
 * PAUSED or PLAYING a new value is refused with a warning on the bus. Use the same variant (or
 * matching model files) in `stegoreveal`.
 *
 * When `model-file` is not set, the model is the `variant`'s file, looked for when the element
 * starts: in `STEGO_MODEL_DIR` when set, else in `models/` of the installed layout (`STEGO_HOME`,
 * or a folder above the plugin's file, such as the checkout holding `target/release/`), else in
 * `/usr/local/share/stego/models` and `/usr/share/stego/models`. onnxruntime is found the same
 * way: `ORT_DYLIB_PATH`, else `.ort/gpu/` or `.ort/cpu/` of the installed layout, else the
 * system's library folders.
 *
 * ## Example launch line
 * ```shell
 * gst-launch-1.0 stegohide name=h ! videoconvert ! autovideosink \
 *     videotestsrc ! video/x-raw,width=320,height=240 ! h.cover \
 *     videotestsrc pattern=ball ! video/x-raw,width=160,height=120 ! h.secret
 * ```
 * Hide and reveal again in one pipeline:
 * ```shell
 * gst-launch-1.0 stegohide name=h ! stegoreveal ! videoconvert ! autovideosink \
 *     videotestsrc num-buffers=100 ! video/x-raw,format=RGB,width=320,height=240 ! h.cover \
 *     videotestsrc pattern=ball ! videoconvert ! h.secret
 * ```
 * The same with Baluja's paper nets (`models/hide.onnx`, `models/reveal.onnx`; ~0.4 fps at
 * 640x480 on two CPU cores, for a GPU):
 * ```shell
 * gst-launch-1.0 stegohide name=h variant=paper ! stegoreveal variant=paper ! videoconvert ! autovideosink \
 *     videotestsrc num-buffers=100 ! video/x-raw,format=RGB,width=320,height=240 ! h.cover \
 *     videotestsrc pattern=ball ! videoconvert ! h.secret
 * ```
 */
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct StegoHide(ObjectSubclass<imp::StegoHide>)
        @extends gst_video::VideoAggregator, gst_base::Aggregator, gst::Element, gst::Object,
        @implements gst::ChildProxy;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    crate::SecretEos::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    crate::SecretFit::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    crate::ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    crate::Variant::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "stegohide",
        gst::Rank::NONE,
        StegoHide::static_type(),
    )
}
