//! Showing a scan's progress: a live line on a terminal (indicatif), or a log line at an
//! interval otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Counts, Tally};

/// How progress is shown.
#[derive(Debug, Clone)]
pub enum Display {
    /// A live status line on stderr (a terminal).
    Bar(ProgressBar),
    /// An `info` log line every `every`.
    Log {
        /// Interval between two lines.
        every: Duration,
    },
}

impl Display {
    /// A status line when stderr is a terminal, else log lines every 10 s.
    pub fn for_stderr() -> Self {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            Display::Bar(bar)
        } else {
            Display::Log { every: Duration::from_secs(10) }
        }
    }
}

/// A running progress display; [`Reporter::finish`] stops it.
pub struct Reporter {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

fn line(counts: &Counts, rate: f64) -> String {
    format!(
        "{} found, {} read ({rate:.0} files/s), {} inserted, {} unchanged, {} failed, {:.1} MiB read",
        counts.discovered,
        counts.processed,
        counts.inserted,
        counts.unchanged,
        counts.failed,
        counts.bytes_read as f64 / (1024.0 * 1024.0)
    )
}

impl Reporter {
    /// Starts showing `tally`.
    pub fn start(tally: Arc<Tally>, display: Display) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let tick = match &display {
                Display::Bar(_) => Duration::from_millis(200),
                Display::Log { every } => *every,
            };
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(tick) => {}
                }
                let counts = tally.counts();
                let now = Instant::now();
                let dt = now.duration_since(last.0).as_secs_f64().max(1e-3);
                let rate = counts.processed.saturating_sub(last.1) as f64 / dt;
                last = (now, counts.processed);
                match &display {
                    Display::Bar(bar) => {
                        bar.set_message(line(&counts, rate));
                        bar.tick();
                    }
                    Display::Log { .. } => tracing::info!(
                        discovered = counts.discovered,
                        processed = counts.processed,
                        inserted = counts.inserted,
                        unchanged = counts.unchanged,
                        failed = counts.failed,
                        bytes_read = counts.bytes_read,
                        files_per_s = rate.round(),
                        elapsed_s = started.elapsed().as_secs(),
                        "scan progress"
                    ),
                }
            }
            if let Display::Bar(bar) = &display {
                bar.finish_and_clear();
            }
        });
        Self { stop, task }
    }

    /// Stops the display (clearing a status line).
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
