//! Strict parsing of Marengo output: `{"data":[{"embedding":[...], "embeddingOption":..,
//! "embeddingScope":.., "startSec":.., "endSec":..}, ...]}`.
//!
//! Anything that is not usable is an [`ErrorKind::ModelFailed`] naming the invocation: a body
//! that is not JSON (a `NaN` literal included), a missing or empty `data`, a missing
//! `embedding`, a wrong dimension, a non-finite or all-zero vector, an unknown option or scope,
//! a space that was not asked for, a clip without valid `startSec`/`endSec`.

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
}

impl Expect<'_> {
    fn fail(&self, message: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::ModelFailed,
            format!("unusable output from {}: {message}", self.invocation),
        )
        .with_context("invocation", self.invocation)
    }

    fn data<'v>(&self, root: &'v Value) -> Result<&'v Vec<Value>, Error> {
        let data = root
            .as_object()
            .ok_or_else(|| self.fail("the output is not a JSON object"))?
            .get("data")
            .ok_or_else(|| self.fail("the output has no \"data\""))?
            .as_array()
            .ok_or_else(|| self.fail("\"data\" is not an array"))?;
        if data.is_empty() {
            return Err(self.fail("\"data\" is empty"));
        }
        Ok(data)
    }

    fn vector(&self, item: &Value, i: usize) -> Result<Vec<f32>, Error> {
        let raw = item
            .get("embedding")
            .ok_or_else(|| self.fail(format!("data[{i}] has no \"embedding\"")))?
            .as_array()
            .ok_or_else(|| self.fail(format!("data[{i}].embedding is not an array")))?;
        let mut v = Vec::with_capacity(raw.len());
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

    /// The single vector of a text (or image) query.
    pub(crate) fn single_vector(&self, body: &[u8]) -> Result<Vec<f32>, Error> {
        let root = self.parse(body)?;
        let data = self.data(&root)?;
        match data.as_slice() {
            [only] => self.vector(only, 0),
            _ => Err(self.fail(format!(
                "expected one embedding for a query, got {}",
                data.len()
            ))),
        }
    }

    /// The embeddings of a media file of `kind`, asked for in `requested` spaces.
    pub(crate) fn media(
        &self,
        body: &[u8],
        kind: MediaKind,
        requested: &[EmbeddingSpace],
    ) -> Result<Vec<Embedding>, Error> {
        let root = self.parse(body)?;
        let data = self.data(&root)?;
        let mut out = Vec::with_capacity(data.len());
        for (i, item) in data.iter().enumerate() {
            if !item.is_object() {
                return Err(self.fail(format!("data[{i}] is not an object")));
            }
            let vector = self.vector(item, i)?;
            let space = match item.get("embeddingOption") {
                None | Some(Value::Null) => self.adapter.implicit_space(kind).ok_or_else(|| {
                    self.fail(format!(
                        "data[{i}] has no \"embeddingOption\", which {kind} output needs"
                    ))
                })?,
                Some(Value::String(option)) => {
                    self.adapter.space_of_option(option).ok_or_else(|| {
                        self.fail(format!(
                            "data[{i}] has embeddingOption {option:?}, which {} does not define",
                            self.adapter.model()
                        ))
                    })?
                }
                Some(other) => {
                    return Err(self.fail(format!(
                        "data[{i}].embeddingOption is not a string ({other})"
                    )));
                }
            };
            if kind != MediaKind::Image && !requested.contains(&space) {
                return Err(self.fail(format!(
                    "data[{i}] is a {space} vector, which was not asked for"
                )));
            }
            let whole_asset = match item.get("embeddingScope") {
                None | Some(Value::Null) => false,
                Some(Value::String(s)) if s == "clip" => false,
                Some(Value::String(s)) if s == "asset" => true,
                Some(other) => {
                    return Err(self.fail(format!(
                        "data[{i}].embeddingScope is {other}, expected \"clip\" or \"asset\""
                    )));
                }
            };
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
            out.push(Embedding {
                space,
                segment,
                vector,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::{Marengo27, Marengo30};
    use EmbeddingSpace::*;

    fn expect(adapter: &'static dyn MarengoAdapter) -> Expect<'static> {
        Expect {
            adapter,
            dimension: 3,
            invocation: "arn:aws:bedrock:us-east-1:123456789012:async-invoke/abcdefghijkl",
        }
    }

    #[test]
    fn parses_v30_video_output() {
        let body = br#"{"data":[
            {"embedding":[0.1,0.2,0.3],"embeddingOption":"visual","embeddingScope":"clip","startSec":0,"endSec":4.2},
            {"embedding":[0.3,0.2,0.1],"embeddingOption":"transcription","embeddingScope":"clip","startSec":0,"endSec":4.2},
            {"embedding":[1,2,3],"embeddingOption":"audio","embeddingScope":"asset","startSec":0,"endSec":9}
        ]}"#;
        let e = expect(&Marengo30)
            .media(body, MediaKind::Video, &[Visual, Audio, Transcription])
            .unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].space, Visual);
        assert_eq!(e[0].segment, Some(Segment::new(0.0, 4.2).unwrap()));
        assert_eq!(e[1].space, Transcription);
        assert_eq!(e[2].segment, None);
    }

    #[test]
    fn parses_v27_options_and_implicit_audio() {
        let body = br#"{"data":[{"embedding":[0.1,0.2,0.3],"embeddingOption":"visual-text","startSec":0.0,"endSec":6.5}]}"#;
        let e = expect(&Marengo27)
            .media(body, MediaKind::Video, &[VisualText])
            .unwrap();
        assert_eq!(e[0].space, VisualText);
        let body = br#"{"data":[{"embedding":[0.1,0.2,0.3],"startSec":0.0,"endSec":8.0}]}"#;
        let e = expect(&Marengo27)
            .media(body, MediaKind::Audio, &[Audio])
            .unwrap();
        assert_eq!(e[0].space, Audio);
    }

    #[test]
    fn rejects_unusable_output_naming_the_invocation() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"data":[{"embedding":[NaN,0.2,0.3],"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "not valid JSON"),
            (br#"{"data":[{"embedding":[0.1,0.2],"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "dimensions"),
            (br#"{"data":[]}"#, "empty"),
            (br#"{"nothing":1}"#, "no \"data\""),
            (br#"{"data":[{"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "no \"embedding\""),
            (br#"{"data":[{"embedding":[0.1,0.2,0.3],"embeddingOption":"visual","endSec":1}]}"#, "startSec"),
            (br#"{"data":[{"embedding":[0.1,0.2,0.3],"embeddingOption":"visual-text","startSec":0,"endSec":1}]}"#, "does not define"),
            (br#"{"data":[{"embedding":[0.1,0.2,0.3],"startSec":0,"endSec":1}]}"#, "no \"embeddingOption\""),
            (br#"{"data":[{"embedding":[0.1,0.2,0.3],"embeddingOption":"audio","startSec":0,"endSec":1}]}"#, "not asked for"),
            (br#"{"data":[{"embedding":[0.1,0.2,0.3],"embeddingOption":"visual","startSec":5,"endSec":1}]}"#, "invalid segment"),
            (br#"{"data":[{"embedding":[0,0,0],"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "zeros"),
            (br#"{"data":[{"embedding":[1e39,0,0],"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "not finite"),
            (br#"{"data":[{"embedding":[null,0,0],"embeddingOption":"visual","startSec":0,"endSec":1}]}"#, "not a number"),
            (br#"{"data":[{"embedding":[1,0,0],"embeddingOption":"visual","embeddingScope":"frame","startSec":0,"endSec":1}]}"#, "embeddingScope"),
        ];
        for (body, needle) in cases {
            let err = expect(&Marengo30)
                .media(body, MediaKind::Video, &[Visual])
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ModelFailed, "{err}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
            assert!(
                err.to_string().contains("async-invoke/abcdefghijkl"),
                "{err}"
            );
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
