//! Log output: `tracing` events to stderr, filtered by `RUST_LOG` (default `info`), through a
//! writer that blanks secrets: the API tokens and AWS credentials this process knows, and
//! anything shaped like a SigV4 signature, credential scope, security token or authorization
//! header (the AWS SDK logs requests at `trace`).

use std::io::Write;
use std::sync::{OnceLock, RwLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Shortest value treated as a secret (shorter ones would blank ordinary words).
const MIN_SECRET: usize = 8;

/// Keys whose values are blanked wherever they appear (`key=value`, `key: value`,
/// `key="value"`), compared without case.
const SECRET_KEYS: [&str; 7] = [
    "x-amz-signature",
    "signature",
    "x-amz-security-token",
    "x-amz-credential",
    "credential",
    "authorization",
    "aws_secret_access_key",
];

fn secrets() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Adds a value to blank from every line written from now on.
pub fn add_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET {
        return;
    }
    if let Ok(mut list) = secrets().write()
        && !list.iter().any(|s| s == secret)
    {
        list.push(secret.to_string());
        // Longest first, so a secret containing another is blanked whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// The AWS credentials in the environment, and the API token variable.
fn add_environment_secrets() {
    for var in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "CROSSMODAL_TOKEN",
    ] {
        if let Ok(v) = std::env::var(var) {
            add_secret(&v);
        }
    }
}

/// `text` with every known secret and every value of a [`SECRET_KEYS`] key blanked.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    if let Ok(list) = secrets().read() {
        for s in list.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
    }
    for key in SECRET_KEYS {
        out = blank_values_of(&out, key);
    }
    out
}

/// Blanks the value after each `key` followed by `=`, `:` or `": "` (JSON), up to the next
/// delimiter.
fn blank_values_of(text: &str, key: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower.get(pos..).and_then(|rest| rest.find(key)) {
        let key_end = pos + found + key.len();
        let (Some(before), Some(after)) = (text.get(pos..key_end), text.get(key_end..)) else {
            break;
        };
        out.push_str(before);
        // The separator: `=`, `:`, with quotes and spaces around.
        let sep_len = after
            .char_indices()
            .take_while(|(_, c)| matches!(c, '=' | ':' | '"' | '\'' | ' '))
            .map(|(i, c)| i + c.len_utf8())
            .last()
            .unwrap_or(0);
        let Some(sep) = after.get(..sep_len) else {
            break;
        };
        if !sep.contains(['=', ':']) {
            pos = key_end;
            continue;
        }
        out.push_str(sep);
        let value = after.get(sep_len..).unwrap_or("");
        // An authorization value runs to the end of the header; others to a delimiter.
        let stops: &[char] = if key == "authorization" {
            &['"', '\'', '\n', '}', ']']
        } else {
            &['&', ',', ' ', '"', '\'', '\n', ';', '}', ']', ')']
        };
        let value_len = value.find(stops).unwrap_or(value.len());
        if value_len > 0 {
            out.push_str(REDACTED);
        }
        pos = key_end + sep_len + value_len;
    }
    out.push_str(text.get(pos..).unwrap_or(""));
    out
}

/// A writer to stderr that redacts each write (the formatter writes one event per call).
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

struct MakeRedacting;

impl<'a> MakeWriter<'a> for MakeRedacting {
    type Writer = RedactingStderr;
    fn make_writer(&'a self) -> RedactingStderr {
        RedactingStderr
    }
}

/// Installs the subscriber.
pub fn init() {
    add_environment_secrets();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(MakeRedacting)
        .with_target(true)
        .try_init();
}

/// Writes one line for the user to stderr (redacted): a fatal error, a notice.
pub fn say(line: &str) {
    let _ = RedactingStderr.write_all(format!("crossmodal: {line}\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_tokens_and_credentials_are_blanked() {
        add_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let line = "GET /b/k?X-Amz-Credential=AKIDEXAMPLE%2F20261201%2Fus-east-1&X-Amz-Signature=abc123def&x=1 \
                    authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2026, SignedHeaders=host, Signature=fe5f80f77d5fa3be \
                    secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY x-amz-security-token: FQoGZXIvYXdzE";
        let out = redact(line);
        for leaked in [
            "AKIDEXAMPLE",
            "abc123def",
            "fe5f80f77d5fa3be",
            "bPxRfiCY",
            "FQoGZXIvYXdzE",
        ] {
            assert!(!out.contains(leaked), "{leaked} in {out}");
        }
        assert!(out.contains("GET /b/k?"), "{out}");
        assert!(out.contains("&x=1"), "{out}");
        assert_eq!(
            redact("no secrets here: signature of a function"),
            "no secrets here: signature of a function"
        );
        let json = r#"{"Authorization": "Bearer abcdefghijklmnop", "ok": 1}"#;
        assert_eq!(redact(json), r#"{"Authorization": "[redacted]", "ok": 1}"#);
    }
}
