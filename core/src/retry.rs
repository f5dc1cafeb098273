//! Retry policy as plain data, applied to temporary errors only.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// How to retry an operation that failed with a temporary error
/// ([`Error::is_temporary`]): exponential backoff with optional full jitter, a bounded number of
/// attempts and an optional overall deadline. Permanent errors are returned at once.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use crossmodal_core::{Error, ErrorKind, RetryPolicy};
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
///
/// let policy = RetryPolicy::default().initial_backoff(Duration::from_millis(1));
/// let calls = AtomicU32::new(0);
/// let value = policy.run("demo", || async {
///     if calls.fetch_add(1, Ordering::SeqCst) < 2 {
///         Err(Error::new(ErrorKind::RateLimited, "slow down"))
///     } else {
///         Ok(42)
///     }
/// }).await.unwrap();
/// assert_eq!((value, calls.load(Ordering::SeqCst)), (42, 3));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Randomise each wait in [0, backoff] ("full jitter") so clients do not retry in lockstep.
    pub jitter: bool,
    /// Give up once this much time has passed since the first attempt.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            jitter: true,
            deadline: Some(Duration::from_secs(120)),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Sets the number of attempts (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the first backoff.
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// Sets the backoff cap.
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// Turns jitter on or off.
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// Sets (or clears) the overall deadline.
    pub fn deadline(mut self, d: Option<Duration>) -> Self {
        self.deadline = d;
        self
    }

    /// The wait before retry number `retry` (0-based), before jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(30));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The wait before retry number `retry` (0-based), with jitter applied when enabled.
    pub fn wait(&self, retry: u32) -> Duration {
        let wait = self.backoff(retry);
        if self.jitter && !wait.is_zero() {
            rand::rng().random_range(Duration::ZERO..=wait)
        } else {
            wait
        }
    }

    /// Runs `op` until it succeeds, fails permanently, or the attempts or deadline run out. The
    /// last error is returned with the attempt count as context; `what` names the operation in
    /// logs.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_temporary() || attempt >= self.max_attempts {
                return Err(with_attempts(err, attempt));
            }
            let wait = self.wait(attempt - 1);
            if let Some(deadline) = self.deadline
                && start.elapsed() + wait > deadline
            {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{what}: gave up after {attempt} attempts within the {deadline:?} deadline: {}",
                        err.message()
                    ),
                )
                .with_context("attempts", attempt)
                .with_source(err));
            }
            tracing::debug!(what, attempt, ?wait, error = %err, "retrying after a temporary error");
            tokio::time::sleep(wait).await;
        }
    }
}

fn with_attempts(err: Error, attempts: u32) -> Error {
    if attempts > 1 {
        err.with_context("attempts", attempts)
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let err = RetryPolicy::default()
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::invalid_input("bad"))
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded() {
        let calls = AtomicU32::new(0);
        let err = RetryPolicy::default()
            .max_attempts(3)
            .deadline(None)
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::new(ErrorKind::Unavailable, "down"))
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.context_value("attempts"), Some("3"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_turns_into_timeout() {
        let err = RetryPolicy::default()
            .max_attempts(100)
            .jitter(false)
            .initial_backoff(Duration::from_secs(1))
            .deadline(Some(Duration::from_secs(5)))
            .run("t", || async {
                Err::<(), _>(Error::new(ErrorKind::RateLimited, "slow down"))
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(500));
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(400));
        assert_eq!(p.backoff(3), Duration::from_millis(500));
        assert_eq!(p.backoff(200), Duration::from_millis(500));
    }
}
