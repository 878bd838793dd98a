//! Reading and writing still images with clear errors and no partial files.

use crate::error::{Error, Result};
use image::RgbImage;
use std::path::Path;

/// Reads an image file as 8-bit RGB (alpha dropped, 16-bit scaled down).
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let err = |reason: String| Error::Image { path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read it ({e}); pass an existing PNG or JPEG file")))?;
    if !meta.is_file() {
        return Err(err("is not a file; pass a PNG or JPEG file".into()));
    }
    if meta.len() == 0 {
        return Err(err("the file is empty; pass a PNG or JPEG file".into()));
    }
    let reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| err(format!("cannot read it ({e})")))?;
    if reader.format().is_none() {
        return Err(err("unsupported or unrecognised image format; use PNG or JPEG".into()));
    }
    let img = reader.decode().map_err(|e| err(format!("cannot decode it ({e}); the file is truncated, corrupt or in an unsupported format — use PNG or JPEG")))?;
    Ok(img.into_rgb8())
}

/// Writes `img` as PNG to `path` atomically: a temporary file beside it, renamed into place,
/// so a failure leaves no partial output.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Io { path: path.to_path_buf(), source: e };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(Error::Io { path: path.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::NotFound, format!("folder {} does not exist", dir.display())) });
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out.png".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| {
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut w = std::io::BufWriter::new(file);
        img.write_to(&mut w, image::ImageFormat::Png).map_err(|e| Error::Image { path: path.to_path_buf(), reason: format!("cannot encode PNG ({e})") })?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}
