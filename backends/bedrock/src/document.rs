//! `serde_json::Value` to `aws_smithy_types::Document` (which has no serde impls).

use std::collections::HashMap;

use aws_smithy_types::{Document, Number};
use serde_json::Value;

/// Converts a JSON value into the SDK's document type (for `StartAsyncInvoke.modelInput`).
pub(crate) fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_document(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_nested_values() {
        let d = to_document(&json!({"a":[1,-2,2.5,"x",true,null]}));
        let Document::Object(map) = d else {
            panic!("not an object")
        };
        let Document::Array(items) = &map["a"] else {
            panic!("not an array")
        };
        assert_eq!(items[0], Document::Number(Number::PosInt(1)));
        assert_eq!(items[1], Document::Number(Number::NegInt(-2)));
        assert_eq!(items[2], Document::Number(Number::Float(2.5)));
        assert_eq!(items[3], Document::String("x".into()));
        assert_eq!(items[4], Document::Bool(true));
        assert_eq!(items[5], Document::Null);
    }
}
