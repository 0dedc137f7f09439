//! The step recorder: the executor's one handle on events and the report.
//!
//! ```no_run
//! use netboot::events::{step, BootOutcome, Emitter, Facts, Recorder};
//! use netboot::plan::DEFAULT_EVENTS_TARGET;
//! let emitter = Emitter::new(Some(DEFAULT_EVENTS_TARGET), vec![]);
//! let mut rec = Recorder::new(emitter, serde_json::json!({"roots": []}));
//! let s = rec.start(step::ISCSI_LOGIN, Facts::new().str("portal", "198.18.0.1:3260"));
//! let res: Result<Facts, std::io::Error> = Ok(Facts::new().u64("tsih", 5));
//! match &res {
//!     Ok(f) => rec.finish(s, Ok::<_, &std::io::Error>(f.clone())),
//!     Err(e) => rec.finish(s, Err(e)),
//! }
//! let _ = rec.finish_boot(BootOutcome::Ok);
//! ```

use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

use super::report::{BootReport, ReportError, StepReport, DEFAULT_REPORT_PATH};
use super::{Emitter, EventsTarget, Facts, SCHEMA_VERSION};

/// How the boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOutcome {
    Ok,
    /// `step` failed with `error` (the error's Display text).
    Failed {
        step: String,
        error: String,
    },
}

impl BootOutcome {
    pub fn failed(step: &str, error: &(impl fmt::Display + ?Sized)) -> BootOutcome {
        BootOutcome::Failed {
            step: step.to_string(),
            error: error.to_string(),
        }
    }
    /// `ok` or `failed:STEP`, as in the report and the `boot_end` event.
    pub fn label(&self) -> String {
        match self {
            BootOutcome::Ok => "ok".to_string(),
            BootOutcome::Failed { step, .. } => format!("failed:{step}"),
        }
    }
    fn error(&self) -> Option<&str> {
        match self {
            BootOutcome::Ok => None,
            BootOutcome::Failed { error, .. } => Some(error),
        }
    }
}

/// A started step; give it back to [`Recorder::finish`].
#[must_use = "a started step must be finished with Recorder::finish"]
#[derive(Debug)]
pub struct StepHandle {
    index: usize,
}

/// Records steps, emits their events and writes the boot report.
#[derive(Debug)]
pub struct Recorder {
    emitter: Emitter,
    plan: Value,
    steps: Vec<StepReport>,
    /// Parallel to `steps`: still running.
    open: Vec<bool>,
    report_path: PathBuf,
}

impl Recorder {
    /// Start recording; emits `boot_start`. `plan` must already be masked
    /// (BootPlan's serializer prints secrets as `***`); the redactor runs
    /// over it again when the report is written.
    pub fn new(mut emitter: Emitter, plan: Value) -> Recorder {
        emitter.boot_start();
        Recorder {
            emitter,
            plan,
            steps: Vec::new(),
            open: Vec::new(),
            report_path: PathBuf::from(DEFAULT_REPORT_PATH),
        }
    }

    /// Write the report somewhere else than [`DEFAULT_REPORT_PATH`] (tests).
    pub fn with_report_path(mut self, path: impl Into<PathBuf>) -> Recorder {
        self.report_path = path.into();
        self
    }

    pub fn emitter(&mut self) -> &mut Emitter {
        &mut self.emitter
    }

    /// Begin `step` (a name from [`super::step`]); emits `step_start`.
    pub fn start(&mut self, step: &str, facts: Facts) -> StepHandle {
        let start_us = self.emitter.t_us();
        self.emitter.step_start_at(step, start_us, &facts);
        self.steps.push(StepReport {
            step: step.to_string(),
            start_us,
            duration_us: 0,
            result: "running".to_string(),
            error: None,
            facts: facts.0,
        });
        self.open.push(true);
        StepHandle {
            index: self.steps.len() - 1,
        }
    }

    /// End a step; `Ok(facts)` adds facts learnt, `Err(e)` records `e`'s
    /// Display text. Emits `step_end` with the duration.
    pub fn finish<E: fmt::Display + ?Sized>(
        &mut self,
        step: StepHandle,
        result: Result<Facts, &E>,
    ) {
        let now = self.emitter.t_us();
        let Some(s) = self.steps.get_mut(step.index) else {
            return;
        };
        self.open[step.index] = false;
        s.duration_us = now.saturating_sub(s.start_us);
        let mut facts = Facts(std::mem::take(&mut s.facts));
        let err = match result {
            Ok(more) => {
                facts.merge(more);
                None
            }
            Err(e) => Some(e.to_string()),
        };
        s.result = if err.is_some() { "error" } else { "ok" }.to_string();
        s.error = err.clone();
        let (name, start, duration) = (s.step.clone(), s.start_us, s.duration_us);
        self.emitter.step_end_at(
            &name,
            start,
            duration,
            err.as_deref().map_or(Ok(()), Err),
            &facts,
        );
        if let Some(s) = self.steps.get_mut(step.index) {
            s.facts = facts.0;
        }
    }

    /// Now, in µs since the agent started (the steps' clock).
    pub fn now_us(&self) -> u64 {
        self.emitter.t_us()
    }

    /// Record a step that ran elsewhere (a helper thread, now joined) from
    /// `start_us` to `end_us`: both events are sent now, each carrying the
    /// real start, and the report shows the real span.
    pub fn span<E: fmt::Display + ?Sized>(
        &mut self,
        step: &str,
        start_us: u64,
        end_us: u64,
        result: Result<Facts, &E>,
    ) {
        let (facts, err) = match result {
            Ok(f) => (f, None),
            Err(e) => (Facts::new(), Some(e.to_string())),
        };
        let duration_us = end_us.saturating_sub(start_us);
        self.emitter.step_start_at(step, start_us, &Facts::new());
        self.emitter.step_end_at(
            step,
            start_us,
            duration_us,
            err.as_deref().map_or(Ok(()), Err),
            &facts,
        );
        self.steps.push(StepReport {
            step: step.to_string(),
            start_us,
            duration_us,
            result: if err.is_some() { "error" } else { "ok" }.to_string(),
            error: err,
            facts: facts.0,
        });
        self.open.push(false);
    }

    /// The plan changed (a fetched config was merged): the report shows
    /// `plan` (masked, as for [`Recorder::new`]), events go to `target`,
    /// and `secrets` are redacted from now on.
    pub fn replan(&mut self, plan: Value, target: Option<EventsTarget>, secrets: Vec<String>) {
        self.plan = plan;
        self.emitter.retarget(target, secrets);
    }

    /// The report as it stands (steps still open show `running`).
    pub fn report(&self, outcome: &BootOutcome) -> BootReport {
        BootReport {
            v: SCHEMA_VERSION,
            plan: self.plan.clone(),
            steps: self.steps.clone(),
            outcome: outcome.label(),
            error: outcome.error().map(str::to_string),
            total_us: self.emitter.t_us(),
            boot_us: self.emitter.origin_us(),
        }
    }

    /// End the boot: steps still open are closed as errors, `boot_end` is
    /// emitted and the report written atomically. A write error is returned
    /// for the caller to log; it must not change the boot's outcome.
    pub fn finish_boot(&mut self, outcome: BootOutcome) -> Result<PathBuf, ReportError> {
        let open: Vec<usize> = (0..self.open.len()).filter(|&i| self.open[i]).collect();
        for index in open {
            self.finish(
                StepHandle { index },
                Err("step did not finish before the boot ended"),
            );
        }
        let report = self.report(&outcome);
        self.emitter
            .boot_end(&outcome.label(), outcome.error(), report.total_us);
        report.write(&self.report_path, self.emitter.redactor())?;
        Ok(self.report_path.clone())
    }

    pub fn report_path(&self) -> &Path {
        &self.report_path
    }
}
