// SPDX-License-Identifier: MIT OR Apache-2.0

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use std::sync::{LazyLock, Mutex};

use crate::common::{self, ModelSettings, SecretEos};
use stego::contract::Role;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "stegohide",
        gst::DebugColorFlags::empty(),
        Some("Deep steganography: hide a secret video in a cover video"),
    )
});

const COVER: &str = "cover";
const SECRET: &str = "secret";
const DEFAULT_SECRET_EOS: SecretEos = SecretEos::Passthrough;

#[derive(Debug, Clone)]
struct Settings {
    model: ModelSettings,
    secret_eos: SecretEos,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: ModelSettings::new(Role::Hide),
            secret_eos: DEFAULT_SECRET_EOS,
        }
    }
}

/// What `finish_buffer` does with the buffer `aggregate_frames` just filled.
#[derive(Debug)]
enum Output {
    /// Push it: a container (or the cover passed through) for a new cover frame.
    Frame,
    /// Drop it: no new cover frame for this output period.
    Skip,
    /// Drop it and send this GAP event downstream instead: the cover has a gap.
    Gap(gst::Event),
}

struct State {
    hider: stego::Hider,
    /// Size the session was last warmed up at.
    warmed: Option<(u32, u32)>,
    /// The last secret frame (hidden again through a secret gap or after the secret's end
    /// with `secret-eos=repeat`).
    last_secret: Option<(gst::Buffer, gst_video::VideoInfo)>,
    /// Whether "no secret frame" was already logged, to log it once per stretch.
    logged_no_secret: bool,
    /// Running time of the last cover buffer (frame or gap) turned into output: the base
    /// class hands the same cover buffer again for every output period it still covers (or
    /// until the next one), and those must not become more output.
    last_cover: Option<gst::ClockTime>,
    /// Set by `aggregate_frames` for `finish_buffer`.
    output: Output,
}

#[derive(Default)]
pub struct StegoHide {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for StegoHide {
    const NAME: &'static str = "GstStegoHide";
    type Type = super::StegoHide;
    type ParentType = gst_video::VideoAggregator;
    type Interfaces = (gst::ChildProxy,);
}

impl StegoHide {
    fn sink_pad(&self, name: &str) -> Option<gst_video::VideoAggregatorPad> {
        self.obj()
            .static_pad(name)
            .and_then(|p| p.downcast::<gst_video::VideoAggregatorPad>().ok())
    }

    /// The running time of `pos` in `pad`'s segment (clipped to its start, as the base class
    /// does when it selects buffers).
    fn running_time(pad: &gst_base::AggregatorPad, pos: gst::ClockTime) -> Option<gst::ClockTime> {
        let segment = pad.segment();
        let segment = segment.downcast_ref::<gst::ClockTime>()?;
        let pos = segment.start().map_or(pos, |start| pos.max(start));
        segment.to_running_time(pos)
    }

    /// The output segment's position at `running_time`.
    fn output_position(&self, running_time: gst::ClockTime) -> Option<gst::ClockTime> {
        let segment = self.obj().src_pad().segment();
        segment
            .downcast_ref::<gst::ClockTime>()?
            .position_from_running_time(running_time)
    }

    /// The cover buffer's timestamp and duration in the output segment: `None` where it has
    /// none there (then the base class's output period stays).
    fn output_timing(
        &self,
        cover_pad: &gst_base::AggregatorPad,
        start_rt: gst::ClockTime,
        cover: &gst::BufferRef,
    ) -> Option<(gst::ClockTime, Option<gst::ClockTime>)> {
        let pts = self.output_position(start_rt)?;
        let end = cover
            .pts()
            .zip(cover.duration())
            .and_then(|(p, d)| Self::running_time(cover_pad, p + d))
            .and_then(|rt| self.output_position(rt));
        Some((pts, end.and_then(|e| e.checked_sub(pts))))
    }

    fn flow_error(&self, what: &str, err: impl std::fmt::Display) -> gst::FlowError {
        gst::element_imp_error!(self, gst::StreamError::Failed, ("{what}: {err}"));
        gst::FlowError::Error
    }

    /// Caps the cover pad accepts: what downstream accepts (the output follows the cover's
    /// format, size and rate), limited to the supported formats.
    fn cover_caps(&self, pad: &gst_base::AggregatorPad, filter: Option<&gst::Caps>) -> gst::Caps {
        let template = pad.pad_template_caps();
        let query_filter = match filter {
            Some(f) => f.intersect_with_mode(&template, gst::CapsIntersectMode::First),
            None => template.clone(),
        };
        let downstream = self.obj().src_pad().peer_query_caps(Some(&query_filter));
        downstream.intersect_with_mode(&template, gst::CapsIntersectMode::First)
    }

    /// Caps the secret pad accepts: any supported format, size and rate; the secret is
    /// converted to the cover's size by the library.
    fn secret_caps(pad: &gst_base::AggregatorPad, filter: Option<&gst::Caps>) -> gst::Caps {
        let template = pad.pad_template_caps();
        match filter {
            Some(f) => f.intersect_with_mode(&template, gst::CapsIntersectMode::First),
            None => template,
        }
    }

    /// Copies the cover unchanged into the output.
    fn passthrough(
        &self,
        cover: &gst_video::VideoFrameRef<&gst::BufferRef>,
        out: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        cover
            .copy(out)
            .map_err(|e| self.flow_error("Cannot copy the cover frame", e))?;
        Ok(gst::FlowSuccess::Ok)
    }

    fn hide(
        &self,
        state: &mut State,
        cover: &gst_video::VideoFrameRef<&gst::BufferRef>,
        secret: &gst_video::VideoFrameRef<&gst::BufferRef>,
        out: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let cover = common::frame(cover).map_err(|e| self.flow_error("Bad cover frame", e))?;
        let secret = common::frame(secret).map_err(|e| self.flow_error("Bad secret frame", e))?;
        let mut out = common::frame_mut(out).map_err(|e| self.flow_error("Bad output frame", e))?;
        state
            .hider
            .hide(&cover, &secret, &mut out)
            .map_err(|e| self.flow_error("Hiding failed", e))?;
        Ok(gst::FlowSuccess::Ok)
    }
}

impl ObjectImpl for StegoHide {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = ModelSettings::properties(Role::Hide);
            props.push(
                glib::ParamSpecEnum::builder_with_default("secret-eos", DEFAULT_SECRET_EOS)
                    .nick("Secret EOS")
                    .blurb(
                        "What to output once the secret has ended before the cover (repeat: \
                         also through a gap in the secret)",
                    )
                    .mutable_playing()
                    .build(),
            );
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = common::lock(&self.settings);
        if settings.model.set_property(value, pspec) {
            drop(settings);
            gst::info!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
            common::notify_model_file(&*self.obj(), pspec);
            return;
        }
        if pspec.name() == "secret-eos" {
            settings.secret_eos = value.get().unwrap_or(DEFAULT_SECRET_EOS);
            gst::info!(
                CAT,
                imp = self,
                "secret-eos set to {:?}",
                settings.secret_eos
            );
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = common::lock(&self.settings);
        if let Some(v) = settings.model.property(pspec) {
            return v;
        }
        match pspec.name() {
            "secret-eos" => settings.secret_eos.to_value(),
            // Only the properties above are installed.
            _ => pspec.default_value().clone(),
        }
    }
}

impl GstObjectImpl for StegoHide {}

impl ElementImpl for StegoHide {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Stego Hide",
                "Filter/Effect/Video/Aggregator",
                "Hides the video on the secret pad inside the video on the cover pad with a deep \
                 steganography network (Baluja 2017); the output has the cover's size, format and \
                 timing. The secret survives only lossless recordings of the container (FFV1 \
                 from RGB/BGRx, PNG; nearly: x264 4:4:4 at quantizer 0); 4:2:0 H.264 and other lossy codecs \
                 destroy it. Example: gst-launch-1.0 videotestsrc ! video/x-raw,width=320,height=240 ! \
                 h.cover videotestsrc pattern=ball ! h.secret stegohide name=h ! stegoreveal ! \
                 videoconvert ! autovideosink",
                "stego project",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = common::caps();
            let src = gst::PadTemplate::with_gtype(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &caps,
                gst_base::AggregatorPad::static_type(),
            );
            let cover = gst::PadTemplate::with_gtype(
                COVER,
                gst::PadDirection::Sink,
                gst::PadPresence::Request,
                &caps,
                gst_video::VideoAggregatorPad::static_type(),
            );
            let secret = gst::PadTemplate::with_gtype(
                SECRET,
                gst::PadDirection::Sink,
                gst::PadPresence::Request,
                &caps,
                gst_video::VideoAggregatorPad::static_type(),
            );
            // The templates are static and valid: building them cannot fail.
            [src, cover, secret].into_iter().flatten().collect()
        });
        PAD_TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        name: Option<&str>,
        caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let pad = self.parent_request_new_pad(templ, name, caps)?;
        self.obj().child_added(&pad, &pad.name());
        Some(pad)
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let name = pad.name();
        self.parent_release_pad(pad);
        self.obj().child_removed(pad, &name);
    }
}

impl AggregatorImpl for StegoHide {
    /// Names the request pads after their templates (`cover`, `secret`) instead of the
    /// aggregator's `sink_%u`, so that `h.cover` and `h.secret` work in gst-launch-1.0.
    fn create_new_pad(
        &self,
        templ: &gst::PadTemplate,
        req_name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst_base::AggregatorPad> {
        let name = templ.name_template();
        if name != COVER && name != SECRET {
            gst::warning!(CAT, imp = self, "No pad template {name}");
            return None;
        }
        if let Some(req) = req_name
            && req != name
        {
            gst::warning!(
                CAT,
                imp = self,
                "Pad {req} requested from template {name}: the pads are named cover and secret"
            );
            return None;
        }
        if self.obj().static_pad(name).is_some() {
            gst::warning!(CAT, imp = self, "The element already has a {name} pad");
            return None;
        }
        Some(
            gst::PadBuilder::<gst_base::AggregatorPad>::from_template(templ)
                .name(name)
                .build(),
        )
    }

    fn sink_query(&self, pad: &gst_base::AggregatorPad, query: &mut gst::QueryRef) -> bool {
        let is_cover = pad.name() == COVER;
        match query.view_mut() {
            gst::QueryViewMut::Caps(q) => {
                let filter = q.filter_owned();
                let caps = if is_cover {
                    self.cover_caps(pad, filter.as_ref())
                } else {
                    Self::secret_caps(pad, filter.as_ref())
                };
                gst::debug!(CAT, obj = pad, "Returning caps {caps}");
                q.set_result(&caps);
                true
            }
            gst::QueryViewMut::AcceptCaps(q) => {
                let caps = q.caps_owned();
                let allowed = if is_cover {
                    self.cover_caps(pad, None)
                } else {
                    Self::secret_caps(pad, None)
                };
                let ok = caps.is_fixed()
                    && caps.can_intersect(&allowed)
                    && caps.is_subset(&pad.pad_template_caps());
                gst::debug!(
                    CAT,
                    obj = pad,
                    "{} caps {caps}",
                    if ok { "Accepting" } else { "Refusing" }
                );
                q.set_result(ok);
                true
            }
            _ => self.parent_sink_query(pad, query),
        }
    }

    /// The output takes the cover's format, size, frame rate and colorimetry.
    fn update_src_caps(&self, downstream: &gst::Caps) -> Result<gst::Caps, gst::FlowError> {
        let Some(info) = self.sink_pad(COVER).and_then(|p| p.video_info()) else {
            gst::debug!(CAT, imp = self, "No cover caps yet");
            return Err(gst_base::AGGREGATOR_FLOW_NEED_DATA);
        };
        let cover_caps = info.to_caps().map_err(|e| {
            gst::error!(
                CAT,
                imp = self,
                "Cannot make caps from the cover's video info: {e}"
            );
            gst::FlowError::NotNegotiated
        })?;
        let caps = cover_caps.intersect_with_mode(downstream, gst::CapsIntersectMode::First);
        if caps.is_empty() {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("Downstream does not accept the cover's caps {cover_caps}"),
                ["downstream caps: {downstream}"]
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        gst::debug!(CAT, imp = self, "Output caps from the cover: {caps}");
        Ok(caps)
    }

    fn fixate_src_caps(&self, mut caps: gst::Caps) -> gst::Caps {
        // Already the cover's (fixed) caps: never let the base class pick the largest input.
        caps.fixate();
        caps
    }

    fn negotiated_src_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        self.parent_negotiated_src_caps(caps)?;
        let info = gst_video::VideoInfo::from_caps(caps)
            .map_err(|_| gst::loggable_error!(CAT, "Invalid output caps {caps}"))?;
        if common::pixel_format(info.format()).is_none() {
            return Err(gst::loggable_error!(
                CAT,
                "Unsupported output format {}",
                info.format()
            ));
        }
        let mut state = common::lock(&self.state);
        if let Some(state) = state.as_mut() {
            let size = (info.width(), info.height());
            if state.warmed != Some(size) {
                let t = std::time::Instant::now();
                state
                    .hider
                    .warm_up(size.0 as usize, size.1 as usize)
                    .map_err(|e| {
                        gst::loggable_error!(CAT, "Warm-up at {}x{} failed: {e}", size.0, size.1)
                    })?;
                state.warmed = Some(size);
                gst::info!(
                    CAT,
                    imp = self,
                    "Warmed up at {}x{} in {:?}",
                    size.0,
                    size.1,
                    t.elapsed()
                );
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        if let Some(state) = common::lock(&self.state).as_mut() {
            state.last_secret = None;
            state.logged_no_secret = false;
            state.last_cover = None;
            state.output = Output::Frame;
        }
        self.parent_flush()
    }

    fn aggregate(&self, timeout: bool) -> Result<gst::FlowSuccess, gst::FlowError> {
        match self.parent_aggregate(timeout) {
            // The base class took a frame with new caps (e.g. a new cover size) and asks to
            // renegotiate. It would do so only once more data arrives (or, live, on the next
            // timeout), holding this frame back: renegotiate now and output it.
            Err(gst_base::AGGREGATOR_FLOW_NEED_DATA)
                if self.obj().src_pad().check_reconfigure() =>
            {
                gst::debug!(CAT, imp = self, "Renegotiating for new input caps");
                if !self.obj().negotiate() {
                    let src = self.obj().src_pad().clone();
                    src.mark_reconfigure();
                    return Err(if src.pad_flags().contains(gst::PadFlags::FLUSHING) {
                        gst::FlowError::Flushing
                    } else {
                        gst::FlowError::NotNegotiated
                    });
                }
                self.parent_aggregate(timeout)
            }
            other => other,
        }
    }

    /// Pushes the frames `aggregate_frames` made; drops the buffers the base class asked for
    /// where the cover has no new frame, and sends the cover's gaps on as GAP events.
    fn finish_buffer(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let output = common::lock(&self.state)
            .as_mut()
            .map_or(Output::Frame, |s| {
                std::mem::replace(&mut s.output, Output::Frame)
            });
        match output {
            Output::Frame => self.parent_finish_buffer(buffer),
            Output::Skip => Ok(gst::FlowSuccess::Ok),
            Output::Gap(event) => {
                let src = self.obj().src_pad().clone();
                // The base class sends stream-start, caps and segment with the first buffer
                // (again after a flush): a GAP must not overtake them.
                if src.sticky_event::<gst::event::Segment>(0).is_some() {
                    gst::debug!(CAT, imp = self, "Sending the cover's gap on: {event:?}");
                    src.push_event(event);
                } else {
                    gst::debug!(CAT, imp = self, "A gap before the first output: dropped");
                }
                Ok(gst::FlowSuccess::Ok)
            }
        }
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = common::lock(&self.settings).model.clone();
        let hider = settings.load(
            self.obj().upcast_ref(),
            *CAT,
            stego::Hider::new,
            stego::Hider::model,
        )?;
        *common::lock(&self.state) = Some(State {
            hider,
            warmed: None,
            last_secret: None,
            logged_no_secret: false,
            last_cover: None,
            output: Output::Frame,
        });
        self.parent_start()
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *common::lock(&self.state) = None;
        self.parent_stop()
    }
}

/// Why a cover frame has no secret frame to hide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoSecret {
    /// No secret pad, or no secret frame yet.
    NotStarted,
    /// A GAP on the secret pad.
    Gap,
    /// The secret pad is EOS.
    Ended,
}

/// Timing: the cover drives the output. The base class asks for one output buffer per period
/// of the output frame rate (the cover's) and hands each pad's buffer current in it, and it
/// keeps handing the last cover buffer while no newer one covers the period: a live source
/// that dropped frames, a GAP event without duration ahead of the cover's EOS (qtdemux on a
/// cut stream), a cover frame longer than a period. It hands a GAP event's empty buffer
/// through the gap. So:
///
/// * each cover frame becomes exactly one output buffer, with the cover frame's timestamp and
///   duration; a period that hands a cover buffer already used, or none, outputs nothing;
/// * a GAP on the cover outputs no buffer: the GAP event goes downstream instead (once the
///   output has started, since it must not overtake the stream's caps and segment);
/// * the output ends (EOS) as soon as the cover has ended and its last frame is out, however
///   long the secret goes on.
///
/// The secret: each cover frame hides the secret frame current at its time. Without one the
/// cover passes through: before the first secret frame (or without a secret pad), and during
/// a GAP on the secret unless `secret-eos=repeat`, which hides the last secret frame through
/// the gap as after the secret's end (a gap is not an end: `secret-eos=eos` does not end the
/// output for it). Once the secret has ended, `secret-eos` decides.
impl VideoAggregatorImpl for StegoHide {
    fn aggregate_frames(
        &self,
        token: &gst_video::subclass::AggregateFramesToken,
        outbuf: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let policy = common::lock(&self.settings).secret_eos;
        let obj = self.obj();
        let out_info = obj.video_info().ok_or(gst::FlowError::NotNegotiated)?;

        let Some(cover_pad) = self.sink_pad(COVER) else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Pad,
                ("stegohide has no cover pad: link the cover video to h.cover")
            );
            return Err(gst::FlowError::Error);
        };
        let mut state = common::lock(&self.state);
        let Some(state) = state.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        state.output = Output::Skip;

        let cover_eos = cover_pad.is_eos();
        let Some(cover_buf) = cover_pad.current_buffer(token) else {
            if cover_eos {
                gst::debug!(CAT, imp = self, "The cover has ended: ending the output");
                return Err(gst::FlowError::Eos);
            }
            gst::log!(CAT, imp = self, "No cover frame for this period: no output");
            return Ok(gst::FlowSuccess::Ok);
        };
        let cover_agg_pad = cover_pad.upcast_ref::<gst_base::AggregatorPad>();
        let new_cover_rt = cover_buf
            .pts()
            .and_then(|pts| Self::running_time(cover_agg_pad, pts))
            .filter(|rt| state.last_cover.is_none_or(|last| *rt > last));
        let Some(cover_rt) = new_cover_rt else {
            if cover_eos {
                gst::debug!(CAT, imp = self, "The cover has ended: ending the output");
                return Err(gst::FlowError::Eos);
            }
            gst::log!(
                CAT,
                imp = self,
                "No new cover frame for this period (cover buffer at {:?} already used): no \
                 output",
                cover_buf.pts()
            );
            return Ok(gst::FlowSuccess::Ok);
        };
        state.last_cover = Some(cover_rt);
        let timing = self.output_timing(cover_agg_pad, cover_rt, &cover_buf);

        let Some(cover) = cover_pad.prepared_frame(token) else {
            let is_gap = cover_buf.size() == 0 && cover_buf.flags().contains(gst::BufferFlags::GAP);
            if !is_gap {
                return Err(self.flow_error(
                    "Cannot map the cover frame",
                    format!("{cover_buf:?} with {:?}", cover_pad.video_info()),
                ));
            }
            if cover_eos {
                gst::debug!(CAT, imp = self, "The cover has ended: ending the output");
                return Err(gst::FlowError::Eos);
            }
            gst::debug!(CAT, imp = self, "A gap on the cover: no output frame");
            if let Some((pts, duration)) = timing {
                state.output = Output::Gap(gst::event::Gap::new(pts, duration));
            }
            return Ok(gst::FlowSuccess::Ok);
        };

        // The cover frame's timing, not the base class's output period.
        if let Some((pts, duration)) = timing {
            outbuf.set_pts(pts);
            if duration.is_some() {
                outbuf.set_duration(duration);
            }
        }
        let mut out = gst_video::VideoFrameRef::from_buffer_ref_writable(outbuf, &out_info)
            .map_err(|e| self.flow_error("Cannot map the output buffer", e))?;
        state.output = Output::Frame;

        let secret_pad = self.sink_pad(SECRET);
        if let Some(pad) = secret_pad.as_ref()
            && let Some(secret) = pad.prepared_frame(token)
        {
            state.logged_no_secret = false;
            state.last_secret = pad.current_buffer(token).zip(pad.video_info());
            return self.hide(state, &cover, &secret, &mut out);
        }

        // No secret frame for this cover frame.
        let why = match secret_pad.as_ref() {
            Some(pad) if pad.is_eos() => NoSecret::Ended,
            // The current buffer without a frame: a GAP event's empty buffer.
            Some(pad) if pad.current_buffer(token).is_some() => NoSecret::Gap,
            _ => NoSecret::NotStarted,
        };
        match (why, policy) {
            (NoSecret::Ended, SecretEos::Eos) => {
                gst::debug!(
                    CAT,
                    imp = self,
                    "The secret has ended: ending the output (secret-eos=eos)"
                );
                return Err(gst::FlowError::Eos);
            }
            (NoSecret::Ended | NoSecret::Gap, SecretEos::Repeat) => {
                if let Some((buffer, info)) = state.last_secret.clone() {
                    gst::log!(CAT, imp = self, "{why:?} secret: hiding its last frame");
                    let secret =
                        gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info)
                            .map_err(|e| self.flow_error("Cannot map the last secret frame", e))?;
                    return self.hide(state, &cover, &secret, &mut out);
                }
            }
            _ => {}
        }
        if !state.logged_no_secret {
            gst::info!(
                CAT,
                imp = self,
                "No secret frame ({why:?}, secret-eos={policy:?}): passing the cover through"
            );
            state.logged_no_secret = true;
        }
        self.passthrough(&cover, &mut out)
    }
}

impl ChildProxyImpl for StegoHide {
    fn child_by_index(&self, index: u32) -> Option<glib::Object> {
        self.obj()
            .sink_pads()
            .into_iter()
            .nth(index as usize)
            .map(|p| p.upcast())
    }

    fn children_count(&self) -> u32 {
        self.obj().num_sink_pads() as u32
    }

    fn child_by_name(&self, name: &str) -> Option<glib::Object> {
        self.obj().static_pad(name).map(|p| p.upcast())
    }
}
