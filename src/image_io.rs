//! Reading and writing still images with clear errors and no partial files.

use crate::error::{Error, Result};
use crate::frame::{check_size, try_zeroed};
use image::{ImageDecoder, RgbImage};
use std::path::Path;

/// Reads an image file as 8-bit RGB (alpha dropped, 16-bit scaled down). Its size is checked
/// against [`crate::frame::MAX_PIXELS`] before it is decoded, and running out of memory while
/// decoding is an error, not an abort.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let err = |reason: String| Error::Image { path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read it ({e}); pass an existing PNG or JPEG file")))?;
    if !meta.is_file() {
        return Err(err("is not a file; pass a PNG or JPEG file".into()));
    }
    if meta.len() == 0 {
        return Err(err("the file is empty; pass a PNG or JPEG file".into()));
    }
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| err(format!("cannot read it ({e})")))?;
    match reader.format() {
        None => return Err(err("unsupported or unrecognised image format; use PNG or JPEG".into())),
        Some(f @ (image::ImageFormat::Png | image::ImageFormat::Jpeg)) => f,
        Some(f) => {
            let name = f.extensions_str().first().map_or_else(|| format!("{f:?}"), |e| e.to_uppercase());
            return Err(err(format!("is a {name} image; only PNG and JPEG are read: convert it to PNG")));
        }
    };
    // Our own pixel limit replaces the decoder's allocation limit.
    reader.limits(image::Limits::no_limits());
    let decode = |e: image::ImageError| err(format!("cannot decode it ({e}); the file is truncated or corrupt — use an intact PNG or JPEG"));
    let decoder = reader.into_decoder().map_err(decode)?;
    let (w, h) = decoder.dimensions();
    check_size(w as usize, h as usize).map_err(|e| err(e.to_string()))?;
    let color = decoder.color_type();
    let n = usize::try_from(decoder.total_bytes()).unwrap_or(usize::MAX);
    let mut buf = try_zeroed::<u8>(n, "the decoded image")?;
    decoder.read_image(&mut buf).map_err(decode)?;
    if color == image::ColorType::Rgb8 {
        return RgbImage::from_raw(w, h, buf).ok_or_else(|| err("decoded to fewer pixels than its size".into()));
    }
    // Other layouts (grey, alpha, 16-bit) go through the image crate's conversion; make sure
    // its 8-bit RGB copy fits first.
    drop(try_zeroed::<u8>(w as usize * h as usize * 3, "the image's RGB copy")?);
    let wrong = || err("decoded to fewer pixels than its size".into());
    let u16s = || buf.chunks_exact(2).map(|c| u16::from_ne_bytes([c[0], c[1]])).collect::<Vec<_>>();
    let img: image::DynamicImage = match color {
        image::ColorType::L8 => image::GrayImage::from_raw(w, h, buf.clone()).ok_or_else(wrong)?.into(),
        image::ColorType::La8 => image::GrayAlphaImage::from_raw(w, h, buf.clone()).ok_or_else(wrong)?.into(),
        image::ColorType::Rgba8 => image::RgbaImage::from_raw(w, h, buf.clone()).ok_or_else(wrong)?.into(),
        image::ColorType::L16 => image::ImageBuffer::<image::Luma<u16>, _>::from_raw(w, h, u16s()).ok_or_else(wrong)?.into(),
        image::ColorType::La16 => image::ImageBuffer::<image::LumaA<u16>, _>::from_raw(w, h, u16s()).ok_or_else(wrong)?.into(),
        image::ColorType::Rgb16 => image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(w, h, u16s()).ok_or_else(wrong)?.into(),
        image::ColorType::Rgba16 => image::ImageBuffer::<image::Rgba<u16>, _>::from_raw(w, h, u16s()).ok_or_else(wrong)?.into(),
        other => return Err(err(format!("has the pixel layout {other:?}, which is not read; save it as 8-bit RGB PNG"))),
    };
    Ok(img.into_rgb8())
}

/// An 8-bit RGB image of `width x height`, black; running out of memory is an error.
pub fn new_rgb(width: u32, height: u32) -> Result<RgbImage> {
    check_size(width as usize, height as usize)?;
    let buf = try_zeroed::<u8>(width as usize * height as usize * 3, "an output image")?;
    Ok(RgbImage::from_raw(width, height, buf).expect("a buffer of the image's size"))
}

/// Writes `img` as PNG to `path` with [`crate::fsio::write_output`]: a regular file is replaced
/// atomically (a failure leaves no partial output), a symbolic link writes its target, a FIFO,
/// a device or `-` (standard output) gets the PNG streamed.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    crate::fsio::write_output(path, |w| {
        img.write_with_encoder(image::codecs::png::PngEncoder::new(w)).map_err(|e| match e {
            image::ImageError::IoError(e) => e,
            e => std::io::Error::other(format!("cannot encode PNG ({e})")),
        })
    })
}
