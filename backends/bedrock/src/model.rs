//! [`MarengoModel`] and the table of regions and model ids it runs with.

use std::fmt;
use std::str::FromStr;

use crossmodal_core::{Error, ModelInfo, Result};

use crate::adapter::{self, MarengoAdapter};

/// The Marengo model versions this crate speaks.
///
/// Marengo Embed 2.7 reaches end of life on 2026-11-30; 3.0 is the default. Vectors of the two
/// never mix (2.7 has 1024 dimensions, 3.0 has 512), so an index built with 2.7 keeps using 2.7
/// until it is rebuilt.
///
/// ```
/// use crossmodal_bedrock::MarengoModel;
/// let m: MarengoModel = "us.twelvelabs.marengo-embed-2-7-v1:0".parse().unwrap();
/// assert_eq!(m, MarengoModel::V2_7);
/// assert_eq!(MarengoModel::default().base_id(), "twelvelabs.marengo-embed-3-0-v1:0");
/// assert_eq!(MarengoModel::V3_0.dimension(), 512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MarengoModel {
    /// TwelveLabs Marengo Embed 3.0 (`twelvelabs.marengo-embed-3-0-v1:0`, 512 dimensions,
    /// nested request body, spaces `visual`, `audio`, `transcription`).
    #[default]
    V3_0,
    /// TwelveLabs Marengo Embed 2.7 (`twelvelabs.marengo-embed-2-7-v1:0`, 1024 dimensions, flat
    /// request body, spaces `visual-image`, `visual-text`, `audio`). End of life 2026-11-30.
    V2_7,
}

/// Where a Marengo model runs and with which ids: one row of [`MARENGO_REGIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegionSupport {
    /// The model.
    pub model: MarengoModel,
    /// The AWS region the calls go to (and the input and output buckets must be in).
    pub region: &'static str,
    /// The ids `InvokeModel` (text, image) takes from this region; the first is the default.
    pub invoke_ids: &'static [&'static str],
    /// The id `StartAsyncInvoke` (video, audio) takes from this region.
    pub async_id: &'static str,
}

const V30: &str = ModelInfo::MARENGO_3_0_ID;
const V27: &str = ModelInfo::MARENGO_2_7_ID;

/// Regions and model ids, from the Bedrock user guide (the Marengo model pages and "Supported
/// Regions and models for inference profiles"): a `us.` profile is called from `us-east-1` only,
/// an `eu.` profile from `eu-west-1` only; there are no `apac.` or `global.` Marengo profiles.
///
/// | model | region | `InvokeModel` | `StartAsyncInvoke` |
/// |---|---|---|---|
/// | 3.0 | us-east-1 | base id or `us.` profile | base id |
/// | 3.0 | eu-west-1 | `eu.` profile | base id |
/// | 3.0 | ap-northeast-2 | base id | base id |
/// | 2.7 | us-east-1 | `us.` profile | base id |
/// | 2.7 | eu-west-1 | `eu.` profile | base id |
pub const MARENGO_REGIONS: &[RegionSupport] = &[
    RegionSupport {
        model: MarengoModel::V3_0,
        region: "us-east-1",
        invoke_ids: &[V30, "us.twelvelabs.marengo-embed-3-0-v1:0"],
        async_id: V30,
    },
    RegionSupport {
        model: MarengoModel::V3_0,
        region: "eu-west-1",
        invoke_ids: &["eu.twelvelabs.marengo-embed-3-0-v1:0"],
        async_id: V30,
    },
    RegionSupport {
        model: MarengoModel::V3_0,
        region: "ap-northeast-2",
        invoke_ids: &[V30],
        async_id: V30,
    },
    RegionSupport {
        model: MarengoModel::V2_7,
        region: "us-east-1",
        invoke_ids: &["us.twelvelabs.marengo-embed-2-7-v1:0"],
        async_id: V27,
    },
    RegionSupport {
        model: MarengoModel::V2_7,
        region: "eu-west-1",
        invoke_ids: &["eu.twelvelabs.marengo-embed-2-7-v1:0"],
        async_id: V27,
    },
];

impl MarengoModel {
    /// The base model id (what `StartAsyncInvoke` takes).
    pub fn base_id(self) -> &'static str {
        match self {
            MarengoModel::V3_0 => V30,
            MarengoModel::V2_7 => V27,
        }
    }

    /// Vector dimension of the model.
    pub fn dimension(self) -> usize {
        self.adapter().model_info().dimension
    }

    /// The model's description as the core sees it (all spaces it can yield).
    pub fn model_info(self) -> ModelInfo {
        self.adapter().model_info()
    }

    /// The regions the model runs in ([`MARENGO_REGIONS`]).
    ///
    /// ```
    /// use crossmodal_bedrock::MarengoModel;
    /// assert_eq!(MarengoModel::V3_0.regions(), ["us-east-1", "eu-west-1", "ap-northeast-2"]);
    /// assert_eq!(MarengoModel::V2_7.regions(), ["us-east-1", "eu-west-1"]);
    /// ```
    pub fn regions(self) -> Vec<&'static str> {
        MARENGO_REGIONS
            .iter()
            .filter(|r| r.model == self)
            .map(|r| r.region)
            .collect()
    }

    /// The table row of the model in `region`, `None` where it does not run.
    pub fn in_region(self, region: &str) -> Option<&'static RegionSupport> {
        MARENGO_REGIONS
            .iter()
            .find(|r| r.model == self && r.region == region)
    }

    /// The model id `InvokeModel` takes in `region` when none is configured (the first id of
    /// the table row); `None` where the model does not run.
    ///
    /// ```
    /// use crossmodal_bedrock::MarengoModel;
    /// let m = MarengoModel::V3_0;
    /// assert_eq!(m.default_invoke_id("eu-west-1").unwrap(), "eu.twelvelabs.marengo-embed-3-0-v1:0");
    /// assert_eq!(m.default_invoke_id("us-west-2"), None); // no prefix guessing
    /// ```
    pub fn default_invoke_id(self, region: &str) -> Option<String> {
        self.in_region(region)
            .and_then(|r| r.invoke_ids.first())
            .map(|id| (*id).to_string())
    }

    /// Short version name (`3.0`, `2.7`).
    pub fn version(self) -> &'static str {
        match self {
            MarengoModel::V3_0 => "3.0",
            MarengoModel::V2_7 => "2.7",
        }
    }

    pub(crate) fn adapter(self) -> &'static dyn MarengoAdapter {
        match self {
            MarengoModel::V3_0 => &adapter::Marengo30,
            MarengoModel::V2_7 => &adapter::Marengo27,
        }
    }

    /// "us-east-1, eu-west-1, ap-northeast-2".
    pub(crate) fn region_list(self) -> String {
        self.regions().join(", ")
    }

    /// Checks an explicitly configured id (`what` names the setting) against the table of the
    /// configured `region`: a region outside the table takes any id (the user knows better); in
    /// a region of the table, an id the table does not list there is refused, naming the ones
    /// it does. An ARN must name the configured region.
    pub(crate) fn check_id_in_region(
        self,
        what: &str,
        id: &str,
        region: &str,
        sync: bool,
    ) -> Result<()> {
        if let Some(rest) = id.strip_prefix("arn:") {
            let arn_region = rest.split(':').nth(2).unwrap_or_default();
            if !arn_region.is_empty() && arn_region != region {
                return Err(Error::invalid_input(format!(
                    "{what} {id:?} is in {arn_region}, but the configured region is {region}: \
                     Bedrock calls a model in the region of the endpoint"
                )));
            }
            return Ok(());
        }
        let Some(row) = self.in_region(region) else {
            return Ok(());
        };
        let allowed: Vec<&str> = if sync {
            row.invoke_ids.to_vec()
        } else {
            vec![row.async_id]
        };
        if allowed.contains(&id) {
            return Ok(());
        }
        Err(Error::invalid_input(format!(
            "{what} {id:?} cannot be used from {region}: {self} takes {} there ({})",
            allowed
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(" or "),
            if sync {
                "InvokeModel: us. profiles are called from us-east-1 only, eu. profiles from \
                 eu-west-1 only"
            } else {
                "StartAsyncInvoke takes the base model id"
            }
        )))
    }
}

impl fmt::Display for MarengoModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Marengo Embed {}", self.version())
    }
}

impl FromStr for MarengoModel {
    type Err = Error;

    /// Accepts `3.0`/`2.7`, a base model id, an inference profile id (`us.…`, `eu.…`) or an ARN
    /// that names one of them.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        match s {
            "3.0" | "3" | "v3" | "marengo-3.0" => return Ok(MarengoModel::V3_0),
            "2.7" | "v2.7" | "marengo-2.7" => return Ok(MarengoModel::V2_7),
            _ => {}
        }
        if s.contains("twelvelabs.marengo-embed-3-0-") {
            Ok(MarengoModel::V3_0)
        } else if s.contains("twelvelabs.marengo-embed-2-7-") {
            Ok(MarengoModel::V2_7)
        } else {
            Err(Error::invalid_input(format!(
                "{s:?} names no Marengo model this crate knows (expected 3.0, 2.7, \
                 twelvelabs.marengo-embed-3-0-v1:0, twelvelabs.marengo-embed-2-7-v1:0 or an \
                 inference profile of them)"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_invoke_ids_follow_the_table_not_a_prefix_rule() {
        let m3 = MarengoModel::V3_0;
        assert_eq!(m3.default_invoke_id("us-east-1").unwrap(), m3.base_id());
        assert_eq!(
            m3.default_invoke_id("eu-west-1").unwrap(),
            "eu.twelvelabs.marengo-embed-3-0-v1:0"
        );
        assert_eq!(
            m3.default_invoke_id("ap-northeast-2").unwrap(),
            m3.base_id()
        );
        // The old prefix rule gave `us.`/`eu.` profiles here; they cannot be called from these
        // regions.
        for region in ["us-west-2", "us-east-2", "eu-central-1", "sa-east-1"] {
            assert!(m3.default_invoke_id(region).is_none(), "{region}");
            assert!(MarengoModel::V2_7.default_invoke_id(region).is_none());
        }
        let m2 = MarengoModel::V2_7;
        assert_eq!(
            m2.default_invoke_id("us-east-1").unwrap(),
            "us.twelvelabs.marengo-embed-2-7-v1:0"
        );
        assert!(m2.default_invoke_id("ap-northeast-2").is_none());
        for row in MARENGO_REGIONS {
            assert_eq!(row.async_id, row.model.base_id());
            assert!(
                row.invoke_ids
                    .iter()
                    .all(|id| id.parse::<MarengoModel>().unwrap() == row.model)
            );
        }
    }

    #[test]
    fn explicit_ids_are_checked_against_the_region() {
        let m3 = MarengoModel::V3_0;
        assert!(
            m3.check_id_in_region(
                "x",
                "us.twelvelabs.marengo-embed-3-0-v1:0",
                "us-east-1",
                true
            )
            .is_ok()
        );
        let err = m3
            .check_id_in_region(
                "x",
                "us.twelvelabs.marengo-embed-3-0-v1:0",
                "eu-west-1",
                true,
            )
            .unwrap_err();
        assert!(err.to_string().contains("eu.twelvelabs"), "{err}");
        // The base id of 2.7 takes no on-demand InvokeModel.
        assert!(
            MarengoModel::V2_7
                .check_id_in_region("x", MarengoModel::V2_7.base_id(), "us-east-1", true)
                .is_err()
        );
        // StartAsyncInvoke takes the base id.
        assert!(
            m3.check_id_in_region(
                "x",
                "eu.twelvelabs.marengo-embed-3-0-v1:0",
                "eu-west-1",
                false
            )
            .is_err()
        );
        // Outside the table, the user's id is taken as given.
        assert!(
            m3.check_id_in_region(
                "x",
                "us.twelvelabs.marengo-embed-3-0-v1:0",
                "us-west-2",
                true
            )
            .is_ok()
        );
        // An ARN must be in the configured region.
        let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.twelvelabs.marengo-embed-3-0-v1:0";
        assert!(m3.check_id_in_region("x", arn, "us-east-1", true).is_ok());
        assert!(m3.check_id_in_region("x", arn, "eu-west-1", true).is_err());
    }

    #[test]
    fn model_ids_parse() {
        for (s, m) in [
            ("twelvelabs.marengo-embed-3-0-v1:0", MarengoModel::V3_0),
            ("eu.twelvelabs.marengo-embed-3-0-v1:0", MarengoModel::V3_0),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.twelvelabs.marengo-embed-2-7-v1:0",
                MarengoModel::V2_7,
            ),
            ("2.7", MarengoModel::V2_7),
        ] {
            assert_eq!(s.parse::<MarengoModel>().unwrap(), m, "{s}");
        }
        assert!(
            "amazon.titan-embed-text-v2:0"
                .parse::<MarengoModel>()
                .is_err()
        );
    }
}
