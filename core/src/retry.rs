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
/// Retries are counted once: when the attempts or the deadline run out, the last error is
/// returned [persistent](Error::is_persistent) (no longer temporary), so a retry loop above
/// this one returns it at once instead of starting over. A policy of one attempt
/// ([`RetryPolicy::none`]) passes errors through unchanged: it retried nothing, so a loop above
/// may.
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

    /// Runs `op` until it succeeds, fails permanently, or the attempts or deadline run out.
    ///
    /// A permanent (or already [persistent](Error::is_persistent)) error is returned at once.
    /// When the attempts run out the last error is returned with the attempt count as context
    /// and marked persistent; when the deadline would pass, a persistent `Timeout` naming the
    /// last error (kept as its source) is returned. `what` names the operation in logs.
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
            if !err.is_temporary() {
                return Err(with_attempts(err, attempt));
            }
            if attempt >= self.max_attempts {
                return Err(exhausted(err, attempt));
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
                .with_source(err)
                .set_persistent());
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

/// The last error of a loop that ran out of attempts: persistent once the loop retried it (a
/// single-attempt policy retried nothing and leaves the decision to the caller).
fn exhausted(err: Error, attempts: u32) -> Error {
    if attempts > 1 {
        err.with_context("attempts", attempts).set_persistent()
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
        assert!(err.is_persistent(), "an exhausted retry is persistent");
        assert!(!err.is_temporary());
    }

    #[tokio::test(start_paused = true)]
    async fn nested_loops_count_attempts_once() {
        // A backend retrying inside (3 attempts) behind a caller's loop (5 attempts): the
        // exhausted inner error is persistent, so the outer loop does not start it over.
        let calls = AtomicU32::new(0);
        let inner = RetryPolicy::default().max_attempts(3).deadline(None);
        let outer = RetryPolicy::default().max_attempts(5).deadline(None);
        let err = outer
            .run("outer", || {
                inner.run("inner", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(Error::new(ErrorKind::RateLimited, "slow down"))
                })
            })
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(err.kind(), ErrorKind::RateLimited);
        assert_eq!(err.context_value("attempts"), Some("3"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_attempt_policy_leaves_the_error_temporary() {
        let calls = AtomicU32::new(0);
        let outer = RetryPolicy::default().max_attempts(4).deadline(None);
        let inner = RetryPolicy::none();
        let err = outer
            .run("outer", || {
                inner.run("inner", || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(Error::new(ErrorKind::Unavailable, "down"))
                })
            })
            .await
            .unwrap_err();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            4,
            "the outer loop is the one that retries"
        );
        assert!(err.is_persistent());
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
        assert!(
            !err.is_temporary(),
            "a deadline spent on retries is not a temporary time-out for the caller to retry"
        );
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
