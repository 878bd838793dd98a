// SPDX-License-Identifier: MIT OR Apache-2.0

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use std::sync::{LazyLock, Mutex};

use crate::common::{self, ModelSettings, SecretEos, SecretFit};
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
/// The output frame rate for a cover of variable rate (framerate 0/1) without max-framerate.
const DEFAULT_VARIABLE_RATE: i32 = 25;
/// Hiding checks every this many cover frames for saturation (until it has warned).
const SATURATION_CHECK_INTERVAL: u64 = 64;

#[derive(Debug, Clone)]
struct Settings {
    secret_eos: SecretEos,
    secret_fit: SecretFit,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            secret_eos: DEFAULT_SECRET_EOS,
            secret_fit: SecretFit::default(),
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
    /// The secret pad was requested but not linked when the cover started: it was ended, and
    /// the cover passes through as without a secret pad (whatever `secret-eos` says).
    secret_unlinked: bool,
    /// Cover frames hidden in so far (the saturation check runs on some of them).
    hidden: u64,
    /// Whether the "cover cannot carry the secret well" warning was posted (once per run).
    warned_saturation: bool,
}

pub struct StegoHide {
    /// The model properties (fixed while running) apart from the others (changeable).
    model_settings: Mutex<ModelSettings>,
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl Default for StegoHide {
    fn default() -> Self {
        StegoHide {
            model_settings: Mutex::new(ModelSettings::new(Role::Hide)),
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(None),
        }
    }
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
    ) -> Timing {
        let pts = self.output_position(start_rt)?;
        let end = cover
            .pts()
            .zip(cover.duration())
            .and_then(|(p, d)| Self::running_time(cover_pad, p + d))
            .and_then(|rt| self.output_position(rt));
        Some((pts, end.and_then(|e| e.checked_sub(pts))))
    }

    fn flow_error(&self, what: &str, err: impl std::fmt::Display) -> gst::FlowError {
        common::flow_error(self.obj().upcast_ref(), what, err)
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

    /// Posts a warning (once per run) when most of the cover's pixels are saturated: the
    /// secret comes back poorly from such a cover.
    fn check_saturation(&self, state: &mut State, cover: &stego::frame::Frame) {
        let n = state.hidden;
        state.hidden += 1;
        if state.warned_saturation || !n.is_multiple_of(SATURATION_CHECK_INTERVAL) {
            return;
        }
        let share = stego::frame::saturated_share(cover);
        if share > stego::frame::SATURATED_WARNING_SHARE {
            state.warned_saturation = true;
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                (
                    "{:.0}% of the cover's pixels have a colour channel at 0 or 255: the cover \
                     cannot carry the secret well there (it will come back poorly)",
                    100.0 * share
                ),
                ["choose a cover with fewer clipped or flat colours (this warning is posted once)"]
            );
        }
    }

    /// The element error for a secret buffer that is not a frame of its caps (too small):
    /// a broken upstream, not a gap.
    fn bad_buffer(&self, what: &str, pad: &gst_video::VideoAggregatorPad, buffer: &gst::BufferRef) -> gst::FlowError {
        let info = pad.video_info();
        gst::element_imp_error!(
            self,
            gst::StreamError::Format,
            ("Cannot map the {what} frame: {}", common::unmappable(what, buffer, info.as_ref()))
        );
        gst::FlowError::Error
    }

    /// A secret pad that was requested but is still unlinked when the cover's caps arrive
    /// would hold the (non-live) aggregator forever: end it, so that the cover passes through.
    fn end_unlinked_secret(&self) {
        let Some(secret) = self.sink_pad(SECRET) else {
            return;
        };
        if secret.peer().is_some() || secret.is_eos() {
            return;
        }
        if let Some(state) = common::lock(&self.state).as_mut() {
            state.secret_unlinked = true;
        }
        gst::info!(
            CAT,
            imp = self,
            "The secret pad is not linked: the cover passes through"
        );
        let _ = secret.send_event(gst::event::StreamStart::new("stegohide-unlinked-secret"));
        let _ = secret.send_event(gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new()));
        let _ = secret.send_event(gst::event::Eos::new());
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
        self.check_saturation(state, &cover);
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
            props.push(
                glib::ParamSpecEnum::builder_with_default("secret-fit", SecretFit::default())
                    .nick("Secret fit")
                    .blurb(
                        "How a secret of another size or aspect is brought to the cover's size: \
                         fit (aspect kept, centred with black bars), crop (aspect kept, centre \
                         crop) or stretch (aspect not kept); takes effect at the next frame",
                    )
                    .mutable_playing()
                    .build(),
            );
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if ModelSettings::set_on(&self.model_settings, self.obj().upcast_ref(), *CAT, value, pspec) {
            return;
        }
        let mut settings = common::lock(&self.settings);
        match pspec.name() {
            "secret-eos" => settings.secret_eos = value.get().expect("type checked upstream"),
            "secret-fit" => settings.secret_fit = value.get().expect("type checked upstream"),
            _ => return,
        }
        gst::info!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if let Some(v) = common::lock(&self.model_settings).property(pspec) {
            return v;
        }
        let settings = common::lock(&self.settings);
        match pspec.name() {
            "secret-eos" => settings.secret_eos.to_value(),
            "secret-fit" => settings.secret_fit.to_value(),
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
                "Deep steganography: hides the secret pad's video in the cover's; record losslessly, not as 4:2:0 H.264",
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
        let cover_pad = self.sink_pad(COVER);
        let Some(info) = cover_pad.as_ref().and_then(|p| p.video_info()) else {
            gst::debug!(CAT, imp = self, "No cover caps yet");
            return Err(gst_base::AGGREGATOR_FLOW_NEED_DATA);
        };
        let mut cover_caps = info.to_caps().map_err(|e| {
            gst::error!(
                CAT,
                imp = self,
                "Cannot make caps from the cover's video info: {e}"
            );
            gst::FlowError::NotNegotiated
        })?;
        if info.fps().numer() <= 0 {
            // A variable rate (a still from pngdec, a VFR stream): the output period (and the
            // base class's latency, 1/rate) needs a rate. As compositor does: the cover's
            // max-framerate, else 25/1. The buffers keep the cover's timestamps either way.
            let max = cover_pad
                .as_ref()
                .and_then(|p| p.current_caps())
                .and_then(|c| c.structure(0).and_then(|s| s.get::<gst::Fraction>("max-framerate").ok()))
                .filter(|f| f.numer() > 0 && f.denom() > 0)
                .unwrap_or(gst::Fraction::new(DEFAULT_VARIABLE_RATE, 1));
            gst::debug!(CAT, imp = self, "Cover frame rate {}: output caps at {max}", info.fps());
            cover_caps.make_mut().set("framerate", max);
        }
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
            let hider = &mut state.hider;
            common::warm_up(
                self.obj().upcast_ref(),
                *CAT,
                &mut state.warmed,
                (info.width(), info.height()),
                |w, h| hider.warm_up(w, h),
            )?;
        }
        Ok(())
    }

    fn sink_event(&self, pad: &gst_base::AggregatorPad, event: gst::Event) -> bool {
        if let gst::EventView::Caps(c) = event.view()
            && let Ok(info) = gst_video::VideoInfo::from_caps(c.caps())
        {
            if let Err(e) = stego::frame::check_size(info.width() as usize, info.height() as usize) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Format,
                    ("The {} video is too large: {e}", pad.name()),
                    ["scale it down (videoscale) before the element"]
                );
                return false;
            }
            if pad.name() == COVER {
                self.end_unlinked_secret();
            }
        }
        self.parent_sink_event(pad, event)
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
        if self.sink_pad(COVER).is_none() {
            // Without a cover there are no output caps: the base class would wait forever.
            gst::element_imp_error!(
                self,
                gst::CoreError::Pad,
                ("stegohide has no cover pad: link the cover video to h.cover (the secret alone cannot be output)")
            );
            return Err(gst::FlowError::Error);
        }
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
        let settings = common::lock(&self.model_settings).clone();
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
            secret_unlinked: false,
            hidden: 0,
            warned_saturation: false,
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
        let (policy, fit) = {
            let settings = common::lock(&self.settings);
            (settings.secret_eos, settings.secret_fit)
        };
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
        state.hider.set_secret_fit(fit.into());

        let Some((cover, timing)) = self.choose_cover(token, state, &cover_pad)? else {
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
        self.hide_secret_in(token, state, policy, &cover, &mut out)
    }
}

/// The cover buffer's timestamp and duration in the output segment (see
/// [`StegoHide::output_timing`]).
type Timing = Option<(gst::ClockTime, Option<gst::ClockTime>)>;

impl StegoHide {
    /// The end of the output: the cover has ended.
    fn cover_ended(&self) -> gst::FlowError {
        gst::debug!(CAT, imp = self, "The cover has ended: ending the output");
        gst::FlowError::Eos
    }

    /// The cover frame this output period turns into a container, with its timing; `None`
    /// when the period outputs nothing (no new cover frame, or a gap on the cover, which
    /// `state.output` then carries on as a GAP event). Ends the output once the cover has ended.
    fn choose_cover<'a>(
        &self,
        token: &'a gst_video::subclass::AggregateFramesToken,
        state: &mut State,
        cover_pad: &gst_video::VideoAggregatorPad,
    ) -> Result<Option<(gst_video::VideoFrameRef<&'a gst::BufferRef>, Timing)>, gst::FlowError> {
        let cover_eos = cover_pad.is_eos();
        let Some(cover_buf) = cover_pad.current_buffer(token) else {
            if cover_eos {
                return Err(self.cover_ended());
            }
            gst::log!(CAT, imp = self, "No cover frame for this period: no output");
            return Ok(None);
        };
        let cover_agg_pad = cover_pad.upcast_ref::<gst_base::AggregatorPad>();
        let new_cover_rt = cover_buf
            .pts()
            .and_then(|pts| Self::running_time(cover_agg_pad, pts))
            .filter(|rt| state.last_cover.is_none_or(|last| *rt > last));
        let Some(cover_rt) = new_cover_rt else {
            if cover_eos {
                return Err(self.cover_ended());
            }
            gst::log!(
                CAT,
                imp = self,
                "No new cover frame for this period (cover buffer at {:?} already used): no \
                 output",
                cover_buf.pts()
            );
            return Ok(None);
        };
        state.last_cover = Some(cover_rt);
        let timing = self.output_timing(cover_agg_pad, cover_rt, &cover_buf);

        if let Some(cover) = cover_pad.prepared_frame(token) {
            return Ok(Some((cover, timing)));
        }
        let is_gap = cover_buf.size() == 0 && cover_buf.flags().contains(gst::BufferFlags::GAP);
        if !is_gap {
            return Err(self.bad_buffer("cover", cover_pad, &cover_buf));
        }
        if cover_eos {
            return Err(self.cover_ended());
        }
        gst::debug!(CAT, imp = self, "A gap on the cover: no output frame");
        if let Some((pts, duration)) = timing {
            state.output = Output::Gap(gst::event::Gap::new(pts, duration));
        }
        Ok(None)
    }

    /// Hides the secret frame current at the cover's time in `cover`, writing `out`; without
    /// one, `secret-eos` (`policy`) decides: the last secret frame, the cover passed through,
    /// or the end of the output.
    fn hide_secret_in(
        &self,
        token: &gst_video::subclass::AggregateFramesToken,
        state: &mut State,
        policy: SecretEos,
        cover: &gst_video::VideoFrameRef<&gst::BufferRef>,
        out: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let secret_pad = self.sink_pad(SECRET);
        if let Some(pad) = secret_pad.as_ref()
            && let Some(secret) = pad.prepared_frame(token)
        {
            state.logged_no_secret = false;
            state.last_secret = pad.current_buffer(token).zip(pad.video_info());
            return self.hide(state, cover, &secret, out);
        }
        let why = self.why_no_secret(token, state, secret_pad.as_ref())?;
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
                    return self.hide(state, cover, &secret, out);
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
        self.passthrough(cover, out)
    }

    /// Why the secret pad has no frame for this cover frame; a secret buffer too small for
    /// its caps is an error, not a gap.
    fn why_no_secret(
        &self,
        token: &gst_video::subclass::AggregateFramesToken,
        state: &State,
        secret_pad: Option<&gst_video::VideoAggregatorPad>,
    ) -> Result<NoSecret, gst::FlowError> {
        Ok(match secret_pad {
            Some(_) if state.secret_unlinked => NoSecret::NotStarted,
            Some(pad) if pad.is_eos() => NoSecret::Ended,
            // The current buffer without a frame: a GAP event's empty buffer, or a buffer
            // too small for its caps.
            Some(pad) => match pad.current_buffer(token) {
                Some(b) if b.size() == 0 && b.flags().contains(gst::BufferFlags::GAP) => {
                    NoSecret::Gap
                }
                Some(b) if b.size() > 0 => return Err(self.bad_buffer("secret", pad, &b)),
                Some(_) => NoSecret::Gap,
                None => NoSecret::NotStarted,
            },
            None => NoSecret::NotStarted,
        })
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
