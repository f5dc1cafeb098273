//! Per-call options of a media embedding: [`MediaEmbedOptions`] with a [`ProcessingWindow`].

use std::fmt;

use crossmodal_core::{Error, Result};

/// A part of a video or audio file to embed, in seconds from its start: Marengo 3.0's
/// `startSec`/`endSec`, Marengo 2.7's `startSec`/`lengthSec`. Segments the model returns keep
/// their times from the start of the file.
///
/// Use it to re-embed part of a long asset (a corrected scene of a 4-hour recording) without
/// paying for the whole file again.
///
/// ```
/// use crossmodal_bedrock::ProcessingWindow;
/// let w = ProcessingWindow::new(600.0, 660.0).unwrap();
/// assert_eq!(w.length_sec(), 60.0);
/// assert!(ProcessingWindow::new(10.0, 10.0).is_err());
/// assert!(ProcessingWindow::new(-1.0, 10.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessingWindow {
    start_sec: f64,
    end_sec: f64,
}

impl ProcessingWindow {
    /// The window from `start_sec` to `end_sec`: finite, `0 <= start < end`.
    pub fn new(start_sec: f64, end_sec: f64) -> Result<Self> {
        if !start_sec.is_finite() || !end_sec.is_finite() || start_sec < 0.0 || end_sec <= start_sec
        {
            return Err(Error::invalid_input(format!(
                "processing window {start_sec}..{end_sec} s: the start must be >= 0 and before \
                 the end"
            )));
        }
        Ok(ProcessingWindow { start_sec, end_sec })
    }

    /// Start, seconds from the start of the file.
    pub fn start_sec(&self) -> f64 {
        self.start_sec
    }

    /// End, seconds from the start of the file.
    pub fn end_sec(&self) -> f64 {
        self.end_sec
    }

    /// Length in seconds.
    pub fn length_sec(&self) -> f64 {
        self.end_sec - self.start_sec
    }

    /// Checks the window against a file of `duration` seconds (when known).
    pub(crate) fn check_within(&self, duration: Option<f64>) -> Result<()> {
        if let Some(d) = duration
            && self.start_sec >= d
        {
            return Err(Error::invalid_input(format!(
                "processing window {self} starts after the end of the {d:.1} s file"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for ProcessingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{} s", self.start_sec, self.end_sec)
    }
}

/// Options of one [`MarengoProvider::embed_media_with`](crate::MarengoProvider::embed_media_with)
/// call (what [`EmbeddingProvider::embed_media`](crossmodal_core::EmbeddingProvider::embed_media)
/// uses is [`Default`]: the whole file).
///
/// ```
/// use crossmodal_bedrock::{MediaEmbedOptions, ProcessingWindow};
/// let opts = MediaEmbedOptions::new().window(ProcessingWindow::new(30.0, 90.0).unwrap());
/// assert_eq!(opts.window.unwrap().start_sec(), 30.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct MediaEmbedOptions {
    /// Embed only this part of a video or audio file (`None`: the whole file).
    pub window: Option<ProcessingWindow>,
}

impl MediaEmbedOptions {
    /// The defaults: the whole file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Embeds only `window` of the file.
    pub fn window(mut self, window: ProcessingWindow) -> Self {
        self.window = Some(window);
        self
    }

    /// What these options add to the job ledger's request key.
    pub(crate) fn fingerprint(&self) -> String {
        match self.window {
            None => String::new(),
            Some(w) => format!(";window={}..{}", w.start_sec, w.end_sec),
        }
    }
}
