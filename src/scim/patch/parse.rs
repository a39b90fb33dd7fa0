//! Reading a PatchOp request: its operations, with the IdPs' spellings of op names.

use super::*;

/// Parses a PatchOp request body (RFC 7644 §3.5.2).
pub fn parse(body: &Value, quirks: &mut Quirks) -> Result<Vec<Operation>, ScimError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("the PATCH body must be a JSON object"))?;
    let schemas = get_ci(obj, "schemas").and_then(Value::as_array);
    let has_urn = schemas.is_some_and(|list| {
        list.iter().any(|u| {
            u.as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_OP_URN))
        })
    });
    if !has_urn {
        return Err(ScimError::invalid_value(format!(
            "a PATCH body needs \"schemas\": [\"{PATCH_OP_URN}\"]"
        )));
    }
    for key in obj.keys() {
        if !key.eq_ignore_ascii_case("schemas") && !key.eq_ignore_ascii_case("Operations") {
            return Err(ScimError::invalid_syntax(format!(
                "unknown member \"{key}\" in the PATCH body"
            )));
        }
    }
    let ops = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("a PATCH body needs an \"Operations\" array"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_value(
            "\"Operations\" must contain at least one operation",
        ));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::new(
            413,
            Some(ScimType::TooMany),
            format!("at most {MAX_OPERATIONS} operations per PATCH"),
        ));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_operation(op, quirks).map_err(|e| at_operation(e, i)))
        .collect()
}

pub(super) fn at_operation(mut e: ScimError, index: usize) -> ScimError {
    e.detail = format!("operation {}: {}", index + 1, e.detail);
    e
}

pub(super) fn parse_operation(v: &Value, quirks: &mut Quirks) -> Result<Operation, ScimError> {
    let obj = v
        .as_object()
        .ok_or_else(|| ScimError::invalid_syntax("each operation must be a JSON object"))?;
    let mut op = None;
    let mut path = None;
    let mut value = None;
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("op") {
            let name = v
                .as_str()
                .ok_or_else(|| ScimError::invalid_syntax("\"op\" must be a string"))?;
            op = Some(match name.to_ascii_lowercase().as_str() {
                "add" => OpKind::Add,
                "replace" => OpKind::Replace,
                "remove" => OpKind::Remove,
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "\"op\" must be add, replace or remove, not \"{name}\""
                    )))
                }
            });
            if name.chars().any(|c| c.is_ascii_uppercase()) {
                quirks.note(Quirk::OpNameCase);
            }
        } else if k.eq_ignore_ascii_case("path") {
            match v {
                // Okta once sent `"path": null` for the path-less form (okta.md §2.4, I4).
                Value::Null => {}
                Value::String(p) => path = Some(filter::parse_path(p.trim())?),
                _ => return Err(invalid_path("\"path\" must be a string")),
            }
        } else if k.eq_ignore_ascii_case("value") {
            value = Some(v.clone());
        } else {
            return Err(ScimError::invalid_syntax(format!(
                "unknown member \"{k}\" in an operation"
            )));
        }
    }
    let op = op.ok_or_else(|| ScimError::invalid_syntax("each operation needs an \"op\""))?;
    if op != OpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_syntax(
            "add and replace operations need a \"value\"",
        ));
    }
    if op == OpKind::Remove && path.is_none() {
        return Err(no_target("a remove operation needs a \"path\""));
    }
    Ok(Operation { op, path, value })
}
