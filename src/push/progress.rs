//! What `dropship push` shows: one progress bar per file (bytes, rate, ETA) when
//! stdout is a terminal; otherwise plain lines a script or a log can read, one when
//! a file starts and one when it ends:
//!
//! ```text
//! pushing /data/a.bin -> a.bin (12.0 MiB)
//! done /data/a.bin -> a.bin (12.0 MiB, 1.4 s)
//! failed /data/b.bin: the service already holds b.bin (3 bytes); upload.on_exists = "fail"
//! ```
//!
//! Paths are shown as given on the command line. Reasons come from the journal,
//! where backends store them already redacted: no credential is ever printed.
//! Notes about the run as a whole (a daemon does the work, an interruption) go to
//! stderr, so that stdout holds only the lines above.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::targets::Target;
use crate::journal::{FileState, PushedRow};
use crate::units::human_bytes;

/// How one file's push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Delivered and verified; a note where the journal has one (e.g. skipped
    /// because the service held the name, `upload.on_exists = "skip"`).
    Done {
        took: Duration,
        note: Option<String>,
    },
    /// Failed or superseded, with the reason; or refused before it was recorded.
    Failed(String),
}

pub struct Progress {
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    /// One per target, in the order of the targets.
    each: Vec<ProgressBar>,
}

impl Progress {
    /// Bars when `terminal`, plain lines otherwise.
    pub fn new(terminal: bool) -> Progress {
        let bars = terminal.then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            each: Vec::new(),
        });
        Progress { bars }
    }

    /// A line about the run as a whole, on stderr (above the bars, if any).
    pub fn note(&self, line: &str) {
        match &self.bars {
            Some(b) => b.multi.suspend(|| eprintln!("dropship: {line}")),
            None => eprintln!("dropship: {line}"),
        }
    }

    /// An argument refused before anything was recorded.
    pub fn refused(&self, given: &std::path::Path, why: &str) {
        self.line(&format!("failed {}: {why}", given.display()));
    }

    /// The targets are recorded and on their way, in this order.
    pub fn started(&mut self, targets: &[Target]) {
        match &mut self.bars {
            Some(b) => {
                let style = ProgressStyle::with_template(
                    "{prefix:16!} [{bar:20}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                for t in targets {
                    let bar = b.multi.add(ProgressBar::new(t.identity.size));
                    bar.set_style(style.clone());
                    bar.set_prefix(t.key.clone());
                    bar.set_message("queued");
                    b.each.push(bar);
                }
            }
            None => {
                for t in targets {
                    println!(
                        "pushing {} -> {} ({})",
                        t.given.display(),
                        t.key,
                        human_bytes(t.identity.size)
                    );
                }
            }
        }
    }

    /// Where target `i` stands now (bars only; plain output says only start and end).
    pub fn advanced(&self, i: usize, row: &PushedRow) {
        let Some(bar) = self.bars.as_ref().and_then(|b| b.each.get(i)) else {
            return;
        };
        bar.set_position(row.bytes_acked.min(row.size));
        // A row back in the queue or waiting says why (the service unreachable,
        // credentials refused, a backoff), as `status` would.
        let msg = match (row.state, &row.last_error) {
            (FileState::Retrying | FileState::Queued, Some(why)) => format!("waiting: {why}"),
            (state, _) => state.to_string(),
        };
        bar.set_message(msg);
    }

    /// Target `i` reached its end.
    pub fn finished(&self, i: usize, t: &Target, ending: &Ending) {
        let line = match ending {
            Ending::Done { took, note } => format!(
                "done {} -> {} ({}, {:.1} s){}",
                t.given.display(),
                t.key,
                human_bytes(t.identity.size),
                took.as_secs_f64(),
                note.as_deref()
                    .map(|n| format!("; {n}"))
                    .unwrap_or_default()
            ),
            Ending::Failed(why) => format!("failed {}: {why}", t.given.display()),
        };
        match self.bars.as_ref().and_then(|b| b.each.get(i)) {
            Some(bar) => {
                if matches!(ending, Ending::Done { .. }) {
                    bar.set_position(t.identity.size);
                    bar.finish_with_message("done");
                } else {
                    bar.abandon_with_message("failed");
                }
                // The bar keeps its place; the line says the rest.
                self.line(&line);
            }
            None => self.line(&line),
        }
    }

    /// Leaves the bars of unfinished files where they stand (an interruption).
    pub fn abandon(&self) {
        if let Some(b) = &self.bars {
            for bar in b.each.iter().filter(|b| !b.is_finished()) {
                bar.abandon();
            }
        }
    }

    fn line(&self, line: &str) {
        match &self.bars {
            Some(b) => b.multi.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }
}
