//! The run's CSV files (`metrics.csv`, `validation.csv`): a header, then one row per step with
//! the step in the first column.

use std::fs::OpenOptions;
use std::path::Path;

use anyhow::{Context, Result};

/// Appends `row` to the CSV file at `path`, writing `header` first when the file is new.
pub fn append_row(path: &Path, header: &[&str], row: &[String]) -> Result<()> {
    let new = !path.is_file();
    let file = OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut w = csv::Writer::from_writer(file);
    if new {
        w.write_record(header)?;
    }
    w.write_record(row)?;
    w.flush().with_context(|| format!("writing {}", path.display()))
}

/// The rows of the CSV file at `path`, header included (none if there is no file).
fn records(path: &Path) -> Result<Vec<csv::StringRecord>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_path(path)?;
    r.records().collect::<std::result::Result<_, _>>().with_context(|| format!("reading {}", path.display()))
}

/// The step of a row (its first field), if it is one.
fn step(row: &csv::StringRecord) -> Option<u64> {
    row.get(0)?.parse().ok()
}

/// Keeps the header and the rows whose step is at most `max_step` (what a run resumed from
/// that step's checkpoint has done).
pub fn truncate_after(path: &Path, max_step: u64) -> Result<()> {
    let rows = records(path)?;
    let Some((header, rows)) = rows.split_first() else { return Ok(()) };
    stego::fsio::replace_file(path, |p| -> Result<()> {
        let mut w = csv::WriterBuilder::new().flexible(true).from_path(p)?;
        w.write_record(header)?;
        for row in rows.iter().filter(|r| step(r).is_some_and(|s| s <= max_step)) {
            w.write_record(row)?;
        }
        Ok(w.flush()?)
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// Columns `cols` of the CSV file at `path` as `(step, value)` points; rows without a step,
/// values that are not numbers and a missing file give no points.
pub fn read_columns(path: &Path, cols: &[usize]) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new(); cols.len()];
    for row in records(path).unwrap_or_default().iter().skip(1) {
        let Some(x) = row.get(0).and_then(|s| s.parse::<f64>().ok()) else { continue };
        for (points, &c) in out.iter_mut().zip(cols) {
            if let Some(y) = row.get(c).and_then(|s| s.parse::<f64>().ok()) {
                points.push((x, y));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_truncate_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        for s in 1..=4u64 {
            append_row(&path, &["step", "a", "note"], &[s.to_string(), format!("{:.1}", s as f64 / 2.0), "x, \"y\"".into()]).unwrap();
        }
        assert!(std::fs::read_to_string(&path).unwrap().starts_with("step,a,note\n1,0.5,\"x, \"\"y\"\"\"\n"));
        assert_eq!(read_columns(&path, &[1, 2]), vec![vec![(1.0, 0.5), (2.0, 1.0), (3.0, 1.5), (4.0, 2.0)], vec![]]);
        truncate_after(&path, 2).unwrap();
        assert_eq!(read_columns(&path, &[1]), vec![vec![(1.0, 0.5), (2.0, 1.0)]]);
        append_row(&path, &["step", "a", "note"], &["3".into(), "9".into(), String::new()]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert_eq!(read_columns(&dir.path().join("none.csv"), &[1]), vec![vec![]]);
    }
}
