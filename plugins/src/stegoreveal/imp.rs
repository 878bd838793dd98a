// SPDX-License-Identifier: MIT OR Apache-2.0

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;
use std::sync::{LazyLock, Mutex};

use crate::common::{self, ModelSettings};
use stego::contract::Role;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "stegoreveal",
        gst::DebugColorFlags::empty(),
        Some("Deep steganography: reveal a hidden video"),
    )
});

struct State {
    revealer: stego::Revealer,
    /// Size the session was last warmed up at.
    warmed: Option<(u32, u32)>,
}

pub struct StegoReveal {
    settings: Mutex<ModelSettings>,
    state: Mutex<Option<State>>,
}

impl Default for StegoReveal {
    fn default() -> Self {
        StegoReveal {
            settings: Mutex::new(ModelSettings::new(Role::Reveal)),
            state: Mutex::new(None),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for StegoReveal {
    const NAME: &'static str = "GstStegoReveal";
    type Type = super::StegoReveal;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for StegoReveal {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> =
            LazyLock::new(|| ModelSettings::properties(Role::Reveal));
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        ModelSettings::set_on(&self.settings, self.obj().upcast_ref(), *CAT, value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        // Only the model properties are installed.
        common::lock(&self.settings)
            .property(pspec)
            .unwrap_or_else(|| pspec.default_value().clone())
    }
}

impl GstObjectImpl for StegoReveal {}

impl ElementImpl for StegoReveal {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Stego Reveal",
                "Filter/Effect/Video",
                "Reveals the secret video that stegohide hid in a container video (deep steganography)",
                "stego project",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = common::caps();
            // The templates are static and valid: building them cannot fail.
            [
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                ),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                ),
            ]
            .into_iter()
            .flatten()
            .collect()
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for StegoReveal {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::NeverInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = common::lock(&self.settings).clone();
        let revealer = settings.load(
            gst::prelude::Cast::upcast_ref(&*self.obj()),
            *CAT,
            stego::Revealer::new,
            stego::Revealer::model,
        )?;
        *common::lock(&self.state) = Some(State {
            revealer,
            warmed: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *common::lock(&self.state) = None;
        Ok(())
    }
}

impl VideoFilterImpl for StegoReveal {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        outcaps: &gst::Caps,
        out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        gst::debug!(CAT, imp = self, "Caps {incaps} -> {outcaps}");
        if common::pixel_format(in_info.format()).is_none()
            || common::pixel_format(out_info.format()).is_none()
        {
            return Err(gst::loggable_error!(
                CAT,
                "Unsupported format {} -> {}",
                in_info.format(),
                out_info.format()
            ));
        }
        if (in_info.width(), in_info.height()) != (out_info.width(), out_info.height()) {
            return Err(gst::loggable_error!(
                CAT,
                "Input and output sizes differ: {incaps} -> {outcaps}"
            ));
        }
        let mut state = common::lock(&self.state);
        let Some(state) = state.as_mut() else {
            return Err(gst::loggable_error!(
                CAT,
                "Caps set before the element was started"
            ));
        };
        let revealer = &mut state.revealer;
        common::warm_up(
            self.obj().upcast_ref(),
            *CAT,
            &mut state.warmed,
            (in_info.width(), in_info.height()),
            |w, h| revealer.warm_up(w, h),
        )
    }

    fn transform_frame(
        &self,
        inframe: &gst_video::VideoFrameRef<&gst::BufferRef>,
        outframe: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let fail = |what: &str, err: &dyn std::fmt::Display| {
            common::flow_error(self.obj().upcast_ref(), what, err)
        };
        let mut state = common::lock(&self.state);
        let Some(state) = state.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let container = common::frame(inframe).map_err(|e| fail("Bad container frame", &e))?;
        let mut out = common::frame_mut(outframe).map_err(|e| fail("Bad output frame", &e))?;
        state
            .revealer
            .reveal(&container, &mut out)
            .map_err(|e| fail("Revealing failed", &e))?;
        Ok(gst::FlowSuccess::Ok)
    }
}
