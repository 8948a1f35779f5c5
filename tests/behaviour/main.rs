//! The behaviour suite: one set of cases run against every backend, each trial named
//! `backend::case`. The daemon under test is the real `dropship` binary; vendor
//! backends talk to their emulator from `dropship-testbed`, started in-process on
//! 127.0.0.1. A case a backend cannot meet (no emulator to inject faults into, no
//! credentials to refuse) shows as ignored, never as a silent pass.
//!
//! `cargo test --test behaviour -- box::` runs one backend;
//! `cargo test --test behaviour -- resume_after_sigkill` one case on all of them.

#[path = "../common/mod.rs"]
mod common;

mod cases;
mod world;

use libtest_mimic::{Arguments, Trial};

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    // Says why the s3 cases show as ignored, if they do.
    world::Kind::S3.runs_here("behaviour");
    for kind in world::Kind::ALL {
        let caps = kind.capabilities();
        for case in cases::ALL {
            let run = case.run;
            let trial = Trial::test(format!("{}::{}", kind.name(), case.name), move || {
                run(kind).map_err(Into::into)
            });
            let runs = kind.available() && case.needs.met_by(kind, &caps);
            trials.push(trial.with_ignored_flag(!runs));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
