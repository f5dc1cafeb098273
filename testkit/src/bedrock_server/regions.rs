//! Which model ids a region takes, as the Bedrock user guide documents them (wire-facts.md,
//! "Regions and model ids are a table"), independently of the crate's own table.
//!
//! | model | region | InvokeModel id | StartAsyncInvoke id |
//! |---|---|---|---|
//! | 3.0 | us-east-1 | base id or `us.` profile | base id |
//! | 3.0 | eu-west-1 | `eu.` profile | base id |
//! | 3.0 | ap-northeast-2 | base id | base id |
//! | 2.7 | us-east-1 | `us.` profile | base id |
//! | 2.7 | eu-west-1 | `eu.` profile | base id |

use crate::bedrock_schema::Version;

/// Bedrock's answer to a model id it cannot invoke in the region.
pub const INVALID_MODEL_ID: &str = "The provided model identifier is invalid.";

/// The `InvokeModel` id forms (`""` the base id, `"us."`, `"eu."`) of a version in a region;
/// empty where the model is not offered.
fn invoke_forms(version: Version, region: &str) -> &'static [&'static str] {
    match (version, region) {
        (Version::V30, "us-east-1") => &["", "us."],
        (Version::V30, "eu-west-1") => &["eu."],
        (Version::V30, "ap-northeast-2") => &[""],
        (Version::V27, "us-east-1") => &["us."],
        (Version::V27, "eu-west-1") => &["eu."],
        _ => &[],
    }
}

/// Checks a model id `InvokeModel` was called with from `region`; the refusal's message.
pub fn check_invoke(
    model_id: &str,
    version: Version,
    prefix: &str,
    region: &str,
) -> Result<(), String> {
    check_arn_region(model_id, region)?;
    let forms = invoke_forms(version, region);
    if forms.contains(&prefix) {
        return Ok(());
    }
    if prefix.is_empty() && !forms.is_empty() {
        // The base id of a model that runs here, but only through an inference profile.
        return Err(format!(
            "Invocation of model ID {model_id} with on-demand throughput isn't supported. Retry \
             your request with the ID or ARN of an inference profile that contains this model."
        ));
    }
    // A profile that cannot be called from this region, or a model not offered here.
    Err(INVALID_MODEL_ID.to_string())
}

/// Checks a model id `StartAsyncInvoke` was called with from `region`.
pub fn check_async(
    model_id: &str,
    version: Version,
    prefix: &str,
    region: &str,
) -> Result<(), String> {
    check_arn_region(model_id, region)?;
    if invoke_forms(version, region).is_empty() {
        return Err(INVALID_MODEL_ID.to_string());
    }
    if !prefix.is_empty() {
        return Err(format!(
            "StartAsyncInvoke takes the base model id, not the inference profile {model_id}"
        ));
    }
    Ok(())
}

/// An ARN must name the region it is called in.
fn check_arn_region(model_id: &str, region: &str) -> Result<(), String> {
    if let Some(rest) = model_id.strip_prefix("arn:") {
        let arn_region = rest.split(':').nth(2).unwrap_or_default();
        if !arn_region.is_empty() && arn_region != region {
            return Err(INVALID_MODEL_ID.to_string());
        }
    }
    Ok(())
}

/// The region of a bucket from `GetBucketLocation`'s `LocationConstraint` (empty means
/// us-east-1, `EU` the old name of eu-west-1).
pub fn bucket_region(constraint: Option<&str>) -> String {
    match constraint {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(r) => r.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let v3 = Version::V30;
        let id3 = v3.base_id();
        assert!(check_invoke(id3, v3, "", "us-east-1").is_ok());
        assert!(check_invoke("x", v3, "us.", "us-east-1").is_ok());
        assert_eq!(
            check_invoke("x", v3, "us.", "us-west-2").unwrap_err(),
            INVALID_MODEL_ID
        );
        assert_eq!(
            check_invoke("x", v3, "eu.", "eu-central-1").unwrap_err(),
            INVALID_MODEL_ID
        );
        assert_eq!(
            check_invoke("x", v3, "us.", "eu-west-1").unwrap_err(),
            INVALID_MODEL_ID
        );
        assert!(
            check_invoke(id3, v3, "", "eu-west-1")
                .unwrap_err()
                .contains("on-demand")
        );
        assert!(check_invoke(id3, v3, "", "ap-northeast-2").is_ok());
        let v2 = Version::V27;
        assert!(
            check_invoke(v2.base_id(), v2, "", "us-east-1")
                .unwrap_err()
                .contains("on-demand")
        );
        assert_eq!(
            check_invoke("x", v2, "", "ap-northeast-2").unwrap_err(),
            INVALID_MODEL_ID
        );
        assert!(check_async(id3, v3, "", "eu-west-1").is_ok());
        assert!(check_async(id3, v3, "", "us-west-2").is_err());
        assert!(check_async("x", v3, "us.", "us-east-1").is_err());
        assert_eq!(bucket_region(None), "us-east-1");
        assert_eq!(bucket_region(Some("eu-west-1")), "eu-west-1");
    }
}
