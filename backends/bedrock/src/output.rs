//! Parsing of Marengo output: `{"data":[{"embedding":[...], "embeddingOption":..,
//! "embeddingScope":.., "startSec":.., "endSec":..}, ...]}`.
//!
//! Both documented shapes are accepted: `data` as a list of items or as one item, and
//! `embeddingOption`/`embeddingScope` as a string or as a list of one string. A job's output is
//! paid for, so one item the crate does not understand (a `fused` option, an unknown scope, a
//! space that was not asked for, an item that is not an object) is skipped and counted, not a
//! reason to throw the others away. What is malformed is an error
//! ([`ErrorKind::ModelFailed`]) naming the invocation and the output's URI: a body that is not
//! JSON (a `NaN` literal included), a missing or empty `data`, an understood item without a
//! usable `embedding` (missing, wrong dimension, non-finite, all zeros) or without a valid
//! `startSec`/`endSec`, and an output in which nothing is usable.

use crossmodal_core::{
    Embedding, EmbeddingSpace, Error, ErrorKind, MediaKind, Segment, check_vector,
};
use serde_json::Value;

use crate::adapter::MarengoAdapter;

/// What the output is checked against.
pub(crate) struct Expect<'a> {
    pub adapter: &'static dyn MarengoAdapter,
    pub dimension: usize,
    /// Which call produced it: an invocation ARN or `InvokeModel <model id>`.
    pub invocation: &'a str,
    /// Where the output was read from (`s3://…/output.json`), for asynchronous jobs.
    pub output: Option<&'a str>,
}

/// The embeddings of a media output and the items skipped, with why.
#[derive(Debug)]
pub(crate) struct MediaOutput {
    pub embeddings: Vec<Embedding>,
    pub skipped: Vec<String>,
}

/// A string, or a list holding exactly one string (the newest AWS page prints options as lists).
enum OneString<'v> {
    Absent,
    One(&'v str),
    Other(&'v Value),
}

fn one_string(v: Option<&Value>) -> OneString<'_> {
    let Some(v) = v else {
        return OneString::Absent;
    };
    match v {
        Value::Null => OneString::Absent,
        Value::String(s) => OneString::One(s),
        Value::Array(items) => match items.as_slice() {
            [Value::String(s)] => OneString::One(s),
            _ => OneString::Other(v),
        },
        other => OneString::Other(other),
    }
}

impl Expect<'_> {
    fn fail(&self, message: impl std::fmt::Display) -> Error {
        let mut err = Error::new(
            ErrorKind::ModelFailed,
            match self.output {
                Some(uri) => format!(
                    "unusable output from {} (read from {uri}): {message}",
                    self.invocation
                ),
                None => format!("unusable output from {}: {message}", self.invocation),
            },
        )
        .with_context("invocation", self.invocation);
        if let Some(uri) = self.output {
            err = err.with_context("output", uri);
        }
        err
    }

    /// The items of `data`: a list, or one item printed as an object.
    fn items<'v>(&self, root: &'v Value) -> Result<Vec<&'v Value>, Error> {
        let data = root
            .as_object()
            .ok_or_else(|| self.fail("the output is not a JSON object"))?
            .get("data")
            .ok_or_else(|| self.fail("the output has no \"data\""))?;
        let items: Vec<&Value> = match data {
            Value::Array(items) => items.iter().collect(),
            Value::Object(_) => vec![data],
            other => {
                return Err(self.fail(format!("\"data\" is neither a list nor an item ({other})")));
            }
        };
        if items.is_empty() {
            return Err(self.fail("\"data\" is empty"));
        }
        Ok(items)
    }

    fn vector(&self, item: &Value, i: usize) -> Result<Vec<f32>, Error> {
        let raw = item
            .get("embedding")
            .ok_or_else(|| self.fail(format!("data[{i}] has no \"embedding\"")))?
            .as_array()
            .ok_or_else(|| self.fail(format!("data[{i}].embedding is not an array")))?;
        let mut v = Vec::with_capacity(raw.len().min(self.dimension));
        for (j, x) in raw.iter().enumerate() {
            let f = x.as_f64().ok_or_else(|| {
                self.fail(format!("data[{i}].embedding[{j}] is not a number ({x})"))
            })? as f32;
            v.push(f);
        }
        check_vector(&v, self.dimension)
            .map_err(|e| self.fail(format!("data[{i}]: {}", e.message())))?;
        Ok(v)
    }

    fn parse(&self, body: &[u8]) -> Result<Value, Error> {
        serde_json::from_slice(body).map_err(|e| {
            self.fail(format!("the output is not valid JSON: {e}"))
                .with_source(e)
        })
    }

    /// The single vector of a query (text, image, text+image).
    pub(crate) fn single_vector(&self, body: &[u8]) -> Result<Vec<f32>, Error> {
        let root = self.parse(body)?;
        let items = self.items(&root)?;
        match items.as_slice() {
            [only] => self.vector(only, 0),
            _ => Err(self.fail(format!(
                "expected one embedding for a query, got {}",
                items.len()
            ))),
        }
    }

    /// Why item `i` is not understood, or its space and whether it covers the whole asset.
    fn understand(
        &self,
        item: &Value,
        i: usize,
        kind: MediaKind,
        requested: &[EmbeddingSpace],
    ) -> Result<(EmbeddingSpace, bool), String> {
        if !item.is_object() {
            return Err(format!("data[{i}] is not an object"));
        }
        let space = match one_string(item.get("embeddingOption")) {
            OneString::Absent => self.adapter.implicit_space(kind).ok_or_else(|| {
                format!("data[{i}] has no \"embeddingOption\", which {kind} output needs")
            })?,
            OneString::One(option) => self.adapter.space_of_option(option).ok_or_else(|| {
                format!(
                    "data[{i}] has embeddingOption {option:?}, which this crate does not map \
                     onto a {} space",
                    self.adapter.model()
                )
            })?,
            OneString::Other(v) => {
                return Err(format!("data[{i}].embeddingOption is {v}"));
            }
        };
        if kind != MediaKind::Image && !requested.contains(&space) {
            return Err(format!(
                "data[{i}] is a {space} vector, which was not asked for"
            ));
        }
        let whole_asset = match one_string(item.get("embeddingScope")) {
            OneString::Absent => false,
            OneString::One("clip") => false,
            OneString::One("asset") => true,
            OneString::One(other) => {
                return Err(format!("data[{i}] has embeddingScope {other:?}"));
            }
            OneString::Other(v) => return Err(format!("data[{i}].embeddingScope is {v}")),
        };
        Ok((space, whole_asset))
    }

    /// The embeddings of a media file of `kind`, asked for in `requested` spaces, and the items
    /// skipped.
    pub(crate) fn media(
        &self,
        body: &[u8],
        kind: MediaKind,
        requested: &[EmbeddingSpace],
    ) -> Result<MediaOutput, Error> {
        let root = self.parse(body)?;
        let items = self.items(&root)?;
        let mut embeddings = Vec::with_capacity(items.len());
        let mut skipped = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let (space, whole_asset) = match self.understand(item, i, kind, requested) {
                Ok(understood) => understood,
                Err(why) => {
                    skipped.push(why);
                    continue;
                }
            };
            let vector = self.vector(item, i)?;
            let segment = if kind == MediaKind::Image || whole_asset {
                None
            } else {
                let secs = |key: &str| {
                    item.get(key)
                        .and_then(Value::as_f64)
                        .ok_or_else(|| self.fail(format!("data[{i}] has no numeric \"{key}\"")))
                };
                let (start, end) = (secs("startSec")?, secs("endSec")?);
                Some(
                    Segment::new(start, end)
                        .map_err(|e| self.fail(format!("data[{i}]: {}", e.message())))?,
                )
            };
            embeddings.push(Embedding {
                space,
                segment,
                vector,
            });
        }
        if embeddings.is_empty() {
            return Err(self.fail(format!(
                "no item is usable ({} skipped: {})",
                skipped.len(),
                skipped.join("; ")
            )));
        }
        Ok(MediaOutput {
            embeddings,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::{Marengo27, Marengo30};
    use EmbeddingSpace::*;

    const ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abcdefghijkl";
    const OUT: &str = "s3://b/out/abcdefghijkl/output.json";

    fn expect(adapter: &'static dyn MarengoAdapter) -> Expect<'static> {
        Expect {
            adapter,
            dimension: 3,
            invocation: ARN,
            output: Some(OUT),
        }
    }

    #[test]
    fn parses_v30_video_output() {
        let body = br#"{"data":[
            {"embedding":[0.1,0.2,0.3],"embeddingOption":"visual","embeddingScope":"clip","startSec":0,"endSec":4.2},
            {"embedding":[0.3,0.2,0.1],"embeddingOption":"transcription","embeddingScope":"clip","startSec":0,"endSec":4.2},
            {"embedding":[1,2,3],"embeddingOption":"audio","embeddingScope":"asset","startSec":0,"endSec":9}
        ]}"#;
        let out = expect(&Marengo30)
            .media(body, MediaKind::Video, &[Visual, Audio, Transcription])
            .unwrap();
        let e = out.embeddings;
        assert_eq!(e.len(), 3);
        assert!(out.skipped.is_empty());
        assert_eq!(e[0].space, Visual);
        assert_eq!(e[0].segment, Some(Segment::new(0.0, 4.2).unwrap()));
        assert_eq!(e[1].space, Transcription);
        assert_eq!(e[2].segment, None);
    }

    #[test]
    fn accepts_data_as_one_item_and_options_as_lists() {
        // The newest AWS page's shape: `data` an object, options and scope lists.
        let body = br#"{"data":{"embedding":[0.1,0.2,0.3],"embeddingOption":["visual"],"embeddingScope":["clip"],"startSec":0,"endSec":6}}"#;
        let out = expect(&Marengo30)
            .media(body, MediaKind::Video, &[Visual])
            .unwrap();
        assert_eq!(out.embeddings.len(), 1);
        assert_eq!(out.embeddings[0].space, Visual);
        assert_eq!(
            out.embeddings[0].segment,
            Some(Segment::new(0.0, 6.0).unwrap())
        );
        let q = expect(&Marengo30)
            .single_vector(br#"{"data":{"embedding":[1,2,3]}}"#)
            .unwrap();
        assert_eq!(q, vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn items_not_understood_are_skipped_and_counted() {
        let body = br#"{"data":[
            {"embedding":[0.1,0.2,0.3],"embeddingOption":"visual","embeddingScope":"clip","startSec":0,"endSec":4},
            {"embedding":[0.1,0.2,0.3],"embeddingOption":"fused","embeddingScope":"clip","startSec":0,"endSec":4},
            {"embedding":[0.1,0.2,0.3],"embeddingOption":"audio","embeddingScope":"clip","startSec":0,"endSec":4},
            {"embedding":[0.1,0.2,0.3],"embeddingOption":"visual","embeddingScope":"frame","startSec":0,"endSec":4},
            {"embedding":[0.1,0.2,0.3],"embeddingOption":["visual","audio"],"startSec":0,"endSec":4},
            "what is this",
            {"embedding":[0.3,0.2,0.1],"embeddingOption":"visual","embeddingScope":"clip","startSec":4,"endSec":8}
        ]}"#;
        let out = expect(&Marengo30)
            .media(body, MediaKind::Video, &[Visual])
            .unwrap();
        assert_eq!(out.embeddings.len(), 2);
        assert_eq!(out.skipped.len(), 5, "{:?}", out.skipped);
        for needle in [
            "\"fused\"",
            "not asked for",
            "\"frame\"",
            "embeddingOption is [",
            "not an object",
        ] {
            assert!(
                out.skipped.iter().any(|s| s.contains(needle)),
                "{needle}: {:?}",
                out.skipped
            );
        }
    }

    #[test]
    fn parses_v27_options_and_implicit_audio() {
        let body = br#"{"data":[{"embedding":[0.1,0.2,0.3],"embeddingOption":"visual-text","startSec":0.0,"endSec":6.5}]}"#;
        let e = expect(&Marengo27)
            .media(body, MediaKind::Video, &[VisualText])
            .unwrap()
            .embeddings;
        assert_eq!(e[0].space, VisualText);
        let body = br#"{"data":[{"embedding":[0.1,0.2,0.3],"startSec":0.0,"endSec":8.0}]}"#;
        let e = expect(&Marengo27)
            .media(body, MediaKind::Audio, &[Audio])
            .unwrap()
            .embeddings;
        assert_eq!(e[0].space, Audio);
    }

    #[test]
    fn rejects_unusable_output_naming_the_invocation_and_the_output() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"data":[{"embedding":[NaN,0.2,0.3],"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "not valid JSON"),
            (br#"{"data":[{"embedding":[0.1,0.2],"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "dimensions"),
            (br#"{"data":[]}"#, "empty"),
            (br#"{"data":"x"}"#, "neither a list"),
            (br#"{"nothing":1}"#, "no \"data\""),
            (br#"{"data":[{"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "no \"embedding\""),
            (br#"{"data":[{"embedding":[0.1,0.2,0.3],"embeddingOption":"visual","endSec":1}]}"#, "startSec"),
            // Nothing usable: the reasons of the skips are in the error.
            (br#"{"data":[{"embedding":[0.1,0.2,0.3],"embeddingOption":"visual-text","startSec":0,"endSec":1}]}"#, "does not map"),
            (br#"{"data":[{"embedding":[0.1,0.2,0.3],"startSec":0,"endSec":1}]}"#, "no \"embeddingOption\""),
            (br#"{"data":[{"embedding":[0.1,0.2,0.3],"embeddingOption":"audio","startSec":0,"endSec":1}]}"#, "not asked for"),
            (br#"{"data":[{"embedding":[0.1,0.2,0.3],"embeddingOption":"visual","startSec":5,"endSec":1}]}"#, "invalid segment"),
            (br#"{"data":[{"embedding":[0,0,0],"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "zeros"),
            (br#"{"data":[{"embedding":[1e39,0,0],"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "not finite"),
            (br#"{"data":[{"embedding":[null,0,0],"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "not a number"),
        ];
        for (body, needle) in cases {
            let err = expect(&Marengo30)
                .media(body, MediaKind::Video, &[Visual])
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ModelFailed, "{err}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
            assert_eq!(err.context_value("invocation"), Some(ARN));
            assert_eq!(err.context_value("output"), Some(OUT));
            assert!(err.message().contains(OUT), "{err}");
        }
    }

    #[test]
    fn query_output_has_exactly_one_vector() {
        let ex = expect(&Marengo30);
        assert_eq!(
            ex.single_vector(br#"{"data":[{"embedding":[1,2,3]}]}"#)
                .unwrap(),
            vec![1.0, 2.0, 3.0]
        );
        assert!(
            ex.single_vector(br#"{"data":[{"embedding":[1,2,3]},{"embedding":[1,2,3]}]}"#)
                .is_err()
        );
    }
}
