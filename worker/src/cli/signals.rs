//! Graceful stop of the long-running commands: the first SIGTERM or SIGINT cancels the scan
//! (reads in flight finish, what was read is written), a second one exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Exit status after a second signal (128 + SIGINT, as shells report an interrupt).
const FORCED_EXIT: i32 = 130;

/// A token cancelled by the first SIGTERM or SIGINT. Call inside the runtime.
pub fn stop_on_signals() -> std::io::Result<CancellationToken> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        let mut either = async || {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        either().await;
        tracing::warn!("stopping: finishing the reads in flight and writing what was read (signal again to quit now)");
        stop.cancel();
        either().await;
        tracing::error!("second signal: exiting without writing the last batch");
        std::process::exit(FORCED_EXIT);
    });
    Ok(token)
}
