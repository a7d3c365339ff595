//! The `--html` report's file: written as the generation goes into a temporary file beside
//! it (`.NAME.tmp-PID`, in the same directory, so that the rename cannot cross file
//! systems), renamed over `NAME` once the report is complete. A run that fails half-way
//! leaves an existing report untouched and removes its temporary file.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use gpt2_edu::HParams;
use gpt2_edu::generate::GenerateConfig;
use gpt2_edu::viz::{Explanation, HeadId, HtmlReport, StepView};

use crate::Failure;

/// An HTML report being written to a temporary file that becomes `path` at the end.
pub struct ReportFile {
    path: PathBuf,
    temporary: PathBuf,
    /// `None` once the report is finished (or after a write failed).
    report: Option<HtmlReport<File>>,
}

impl ReportFile {
    /// Creates the temporary file and writes the report's start; a report that cannot be
    /// written fails here, before any work.
    pub fn create(
        path: &Path,
        hparams: &HParams,
        config: &GenerateConfig,
        heads: &[HeadId],
    ) -> Result<Self, Failure> {
        let cannot = |why: String| {
            Failure::Message(format!("cannot write the HTML report to {}: {why}", path.display()))
        };
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            return Err(cannot("that is not a file name".into()));
        };
        if path.is_dir() {
            return Err(cannot("it is a directory".into()));
        }
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let temporary = directory.join(format!(".{name}.tmp-{}", std::process::id()));
        // create_new: never write through a file (or a link) already there.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(|e| cannot(e.to_string()))?;
        let mut this = Self { path: path.to_path_buf(), temporary, report: None };
        let report = HtmlReport::start(file, hparams, config, heads);
        this.report = Some(report.map_err(|e| this.write_failed(&e))?);
        Ok(this)
    }

    /// Writes one step's section.
    pub fn step(&mut self, step: &StepView) -> Result<(), Failure> {
        let Some(report) = self.report.as_mut() else {
            return Ok(()); // unreachable: the run stops at the first failure
        };
        report.step(step).map_err(|e| self.write_failed(&e))
    }

    /// Writes the end of the report and renames it to its path.
    pub fn finish(mut self, run: &Explanation) -> Result<(), Failure> {
        let Some(report) = self.report.take() else {
            return Ok(());
        };
        let file = report.finish(run).map_err(|e| self.write_failed(&e))?;
        file.sync_all().map_err(|e| self.write_failed(&e))?;
        drop(file);
        std::fs::rename(&self.temporary, &self.path).map_err(|e| {
            Failure::Message(format!(
                "cannot write the HTML report to {}: renaming {} to it failed: {e}",
                self.path.display(),
                self.temporary.display()
            ))
        })?;
        self.temporary = PathBuf::new(); // renamed: nothing to remove
        Ok(())
    }

    fn write_failed(&self, error: &io::Error) -> Failure {
        Failure::Message(format!(
            "cannot write the HTML report to {}: writing {} failed: {error}",
            self.path.display(),
            self.temporary.display()
        ))
    }
}

impl Drop for ReportFile {
    /// Removes the temporary file of a report that was not finished.
    fn drop(&mut self) {
        self.report = None; // closes the file
        if !self.temporary.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}
