//! OpenSearch versions and the feature floors this crate relies on.
//!
//! Every query this crate sends puts its filter inside the `knn` clause (efficient filtering),
//! so the floors are the versions that filter there, plus the space types each engine offers:
//!
//! | what | lucene | faiss |
//! |---|---|---|
//! | efficient filtering (the crate's only query shape) | 2.4 | 2.9 |
//! | `cosinesimil` | every 2.x | 2.19 |
//! | `innerproduct` (on unit vectors: the cosine) | 2.13 | 2.13 (on 2.9-2.12 filtered searches score `(1 + ip) / 2`) |
//! | `method_parameters.ef_search` per query | 2.16 | 2.16 |

use std::fmt;
use std::str::FromStr;

use crossmodal_core::{Error, ErrorKind, Result};

use crate::config::{Engine, SpaceType};

/// An OpenSearch version, major and minor (the patch level changes no feature this crate uses).
///
/// ```
/// use crossmodal_opensearch::OpenSearchVersion;
/// let v: OpenSearchVersion = "2.11.1".parse().unwrap();
/// assert_eq!(v, OpenSearchVersion::new(2, 11));
/// assert!(v < OpenSearchVersion::new(2, 19));
/// assert_eq!(v.to_string(), "2.11");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpenSearchVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl OpenSearchVersion {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        OpenSearchVersion { major, minor }
    }

    /// Efficient filtering (filter inside the `knn` clause) with lucene.
    pub const LUCENE_FILTERING: OpenSearchVersion = OpenSearchVersion::new(2, 4);
    /// Efficient filtering with faiss HNSW.
    pub const FAISS_FILTERING: OpenSearchVersion = OpenSearchVersion::new(2, 9);
    /// `innerproduct` with lucene, and faiss `innerproduct` scoring filtered searches like
    /// unfiltered ones.
    pub const INNER_PRODUCT: OpenSearchVersion = OpenSearchVersion::new(2, 13);
    /// `method_parameters.ef_search` in queries.
    pub const QUERY_EF_SEARCH: OpenSearchVersion = OpenSearchVersion::new(2, 16);
    /// faiss with `cosinesimil`.
    pub const FAISS_COSINE: OpenSearchVersion = OpenSearchVersion::new(2, 19);
}

impl fmt::Display for OpenSearchVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for OpenSearchVersion {
    type Err = Error;

    /// `2`, `2.11`, `2.11.0`, `3.0.0-beta1`; anything else is `InvalidInput`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid_input("not an OpenSearch version").with_context("version", s);
        let core = s.trim().split(['-', '+']).next().unwrap_or_default();
        let mut parts = core.split('.');
        let major = parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .ok_or_else(bad)?;
        let minor = match parts.next() {
            None => 0,
            Some(p) => p.parse::<u32>().map_err(|_| bad())?,
        };
        Ok(OpenSearchVersion { major, minor })
    }
}

/// Checks that `engine` and `space_type` work on `version` for the queries this crate sends;
/// `kind` is the error kind to report (`InvalidInput` for a declared version, `Unsupported`
/// for a detected one).
pub(crate) fn check_engine(
    version: OpenSearchVersion,
    engine: Engine,
    space_type: SpaceType,
    kind: ErrorKind,
) -> Result<()> {
    let refuse = |message: String| {
        Err(Error::new(kind, message)
            .with_context("opensearch_version", version)
            .with_context("engine", engine)
            .with_context("space_type", space_type))
    };
    match (engine, space_type) {
        (Engine::Lucene, _) if version < OpenSearchVersion::LUCENE_FILTERING => refuse(format!(
            "OpenSearch {version} cannot filter inside a k-NN query (efficient filtering needs \
             2.4 with lucene, 2.9 with faiss); this crate needs it"
        )),
        (Engine::Faiss, _) if version < OpenSearchVersion::FAISS_FILTERING => refuse(format!(
            "faiss filters inside a k-NN query (efficient filtering) from OpenSearch 2.9, the \
             cluster runs {version}: use Engine::Lucene (2.4 or later)"
        )),
        (Engine::Lucene, SpaceType::InnerProduct) if version < OpenSearchVersion::INNER_PRODUCT => {
            refuse(format!(
                "lucene offers innerproduct from OpenSearch 2.13, the cluster runs {version}: use \
                 SpaceType::CosineSimil"
            ))
        }
        (Engine::Faiss, SpaceType::InnerProduct) if version < OpenSearchVersion::INNER_PRODUCT => {
            refuse(format!(
                "faiss innerproduct scores filtered searches differently before OpenSearch 2.13 \
                 (the cluster runs {version}): use Engine::Lucene with SpaceType::CosineSimil"
            ))
        }
        (Engine::Faiss, SpaceType::CosineSimil) if version < OpenSearchVersion::FAISS_COSINE => {
            let instead = if version >= OpenSearchVersion::INNER_PRODUCT {
                "SpaceType::InnerProduct (this crate stores unit vectors, so it is the cosine) \
                 or Engine::Lucene"
            } else {
                "Engine::Lucene (faiss innerproduct is not usable before 2.13)"
            };
            refuse(format!(
                "faiss supports cosinesimil from OpenSearch 2.19, the cluster runs {version}: use \
                 {instead}"
            ))
        }
        _ => Ok(()),
    }
}

/// Whether queries may carry `method_parameters.ef_search` on `version`.
pub(crate) fn query_ef_search_supported(version: OpenSearchVersion) -> bool {
    version >= OpenSearchVersion::QUERY_EF_SEARCH
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> OpenSearchVersion {
        s.parse().unwrap()
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(v("2"), OpenSearchVersion::new(2, 0));
        assert_eq!(v("3.0.0-beta1"), OpenSearchVersion::new(3, 0));
        assert!(v("2.9") < v("2.13"));
        for bad in ["", "x", "2.x", "-1"] {
            assert_eq!(
                bad.parse::<OpenSearchVersion>().unwrap_err().kind(),
                ErrorKind::InvalidInput
            );
        }
    }

    #[test]
    fn the_floors_are_the_documented_ones() {
        let ok = |ver: &str, e, s| check_engine(v(ver), e, s, ErrorKind::InvalidInput).is_ok();
        use Engine::{Faiss, Lucene};
        use SpaceType::{CosineSimil as Cos, InnerProduct as Ip};
        // Efficient filtering: lucene 2.4, faiss 2.9.
        assert!(!ok("2.3", Lucene, Cos) && ok("2.4", Lucene, Cos));
        assert!(!ok("2.8", Faiss, Ip) && !ok("2.9", Faiss, Cos));
        // lucene innerproduct 2.13.
        assert!(!ok("2.12", Lucene, Ip) && ok("2.13", Lucene, Ip));
        // faiss innerproduct fallback needs 2.13; before that lucene.
        assert!(!ok("2.12", Faiss, Ip) && ok("2.13", Faiss, Ip));
        // faiss cosinesimil 2.19.
        assert!(!ok("2.18", Faiss, Cos) && ok("2.19", Faiss, Cos) && ok("3.0", Faiss, Cos));
        let e = check_engine(v("2.11"), Faiss, Cos, ErrorKind::Unsupported).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(
            e.message().contains("2.19") && e.message().contains("Lucene"),
            "{e}"
        );
        let e = check_engine(v("2.15"), Faiss, Cos, ErrorKind::InvalidInput).unwrap_err();
        assert!(e.message().contains("InnerProduct"), "{e}");
        assert!(!query_ef_search_supported(v("2.15")) && query_ef_search_supported(v("2.16")));
    }
}
