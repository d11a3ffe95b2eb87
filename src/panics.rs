//! Panics are bugs; when one happens it must neither leak a secret nor leave a connector
//! looking healthy while it does nothing.
//!
//! - [`register_secrets`] records every secret value the daemon was given (the worker's
//!   REST credentials and `kafka.*` secrets at start, each connector's secret properties
//!   whenever it starts), and [`scrub`] replaces them with `********` in any text. The
//!   registry only grows: a value that once was a secret stays masked.
//! - [`install_hook`] replaces Rust's default panic hook (which prints the raw message to
//!   stderr) with one that logs the scrubbed message, the thread and the location at error
//!   level through `tracing`, like every other line of the daemon's log.
//! - [`CatchPanic`] runs one connector attempt so that a panic inside it ends the attempt
//!   with a [`TaskPanicked`] error (scrubbed message) instead of unwinding through the
//!   supervisor: the connector is then FAILED with that message, as a Kafka Connect task
//!   that threw is.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{PoisonError, RwLock};
use std::task::{Context, Poll};

/// What [`scrub`] puts in place of a secret.
pub const MASK: &str = "********";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds secret values to the set [`scrub`] masks; empty values are ignored.
pub fn register_secrets<I, S>(values: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut secrets = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    for value in values {
        let value = value.as_ref();
        if !value.is_empty() && !secrets.iter().any(|s| s == value) {
            secrets.push(value.to_owned());
        }
    }
    // Longest first, so a secret that contains another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret value replaced by [`MASK`].
pub fn scrub(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    let mut out = text.to_owned();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// The text of a panic payload (`&str` or `String`; anything else has none).
fn payload_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)")
}

/// Replaces the process's panic hook with one that logs the scrubbed message, the
/// thread and the location at error level (target `outflow::panic`), with a backtrace
/// when `RUST_BACKTRACE` asks for one.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = scrub(payload_text(info.payload()));
        let location = info
            .location()
            .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
        let thread = std::thread::current();
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => backtrace.to_string(),
            _ => String::new(),
        };
        tracing::error!(
            target: "outflow::panic",
            thread = thread.name().unwrap_or("unnamed"),
            location,
            message,
            backtrace,
            "panic: this is a bug in outflow; please report it with this log line"
        );
    }));
}

/// A task's attempt ended by a panic; the message is scrubbed of secrets.
#[derive(Debug, thiserror::Error)]
#[error(
    "the connector's task panicked: {message}. This is a bug in outflow: report it with the \
     log, then restart the connector (POST /connectors/{{name}}/restart)"
)]
pub struct TaskPanicked {
    /// The panic message, secrets masked.
    pub message: String,
}

/// A future that turns a panic while it is polled into `Err(TaskPanicked)`.
pub struct CatchPanic<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> CatchPanic<F> {
    /// Wraps `future`.
    pub fn new(future: F) -> Self {
        Self {
            inner: Box::pin(future),
        }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, TaskPanicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(TaskPanicked {
                message: scrub(payload_text(payload.as_ref())),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_registered_values_longest_first() {
        register_secrets(["s3cr3t-panic-test", "s3cr3t-panic-test-longer", ""]);
        assert_eq!(
            scrub("a s3cr3t-panic-test-longer and s3cr3t-panic-test here"),
            "a ******** and ******** here"
        );
        assert_eq!(scrub("nothing to hide"), "nothing to hide");
    }

    #[tokio::test]
    async fn a_panicking_attempt_becomes_an_error_without_the_secret() {
        register_secrets(["hunter2-in-a-panic"]);
        let outcome = CatchPanic::new(async {
            tokio::task::yield_now().await;
            let config = "password=hunter2-in-a-panic";
            panic!("unexpected config {config}");
        })
        .await;
        let error = outcome.expect_err("the panic is caught");
        let text = error.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("unexpected config password=********"),
            "{text}"
        );
        assert!(CatchPanic::new(async { 7 }).await.is_ok_and(|v| v == 7));
    }

    #[test]
    fn the_hook_logs_the_scrubbed_message_and_location() {
        #[derive(Clone, Default)]
        struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        register_secrets(["token-in-a-hook-panic"]);
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        install_hook();
        tracing::subscriber::with_default(subscriber, || {
            let result = std::panic::catch_unwind(|| {
                let token = String::from("token-in-a-hook-panic");
                panic!("bearer {token} rejected");
            });
            assert!(result.is_err());
        });
        let _ = std::panic::take_hook();
        let log = String::from_utf8_lossy(
            &captured
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
        .into_owned();
        assert!(!log.contains("token-in-a-hook-panic"), "{log}");
        assert!(log.contains("bearer ******** rejected"), "{log}");
        assert!(log.contains("src/panics.rs"), "{log}");
        assert!(log.contains("ERROR"), "{log}");
    }
}
