//! Value rules PATCH applies: what a `remove` with a value removes, equality and
//! duplicates of multi-valued entries, `primary`, merging complex values, immutability.

use super::*;

/// `remove` with a value on a whole multi-valued attribute: the values to remove, as an
/// array or one object. Anything else would have to be read as "remove everything", which
/// is never what a client that sent a value meant; it is refused.
pub(super) fn values_to_remove(def: &AttrDef, v: &Value) -> Result<Vec<Value>, ScimError> {
    let name = def.name.as_str();
    match v {
        Value::Array(items) if items.iter().any(Value::is_null) => Err(ScimError::invalid_value(
            format!("the values to remove from \"{name}\" cannot contain null"),
        )),
        Value::Array(items) if def.ty == AttrType::Complex && !items.iter().all(Value::is_object) => {
            Err(ScimError::invalid_value(format!(
                "each value to remove from \"{name}\" must be a JSON object"
            )))
        }
        Value::Array(items) => Ok(items.clone()),
        Value::Object(_) => Ok(vec![v.clone()]),
        _ => Err(ScimError::invalid_value(format!(
            "a remove on \"{name}\" takes the values to remove as an array (or one object); to remove every value, send no \"value\""
        ))),
    }
}

pub(super) fn remove_takes_no_value(name: &str) -> ScimError {
    ScimError::invalid_value(format!(
        "a remove of \"{name}\" takes no \"value\"; the path alone says what to remove"
    ))
}

/// `add` on a value filter that matches nothing: appends the element the filter describes
/// with the value merged in. `Ok(true)` when an element was added.
pub(super) fn add_described_value(
    def: &AttrDef,
    f: &Filter,
    sub: Option<&AttrDef>,
    value: &Value,
    items: &mut Vec<Value>,
) -> Result<bool, ScimError> {
    let name = def.name.as_str();
    let mut element = element_from_filter(def, f).ok_or_else(|| {
        no_target(format!(
            "no value of \"{name}\" matches the filter, and the filter does not describe a new value (use eq comparisons joined by and)"
        ))
    })?;
    match sub {
        Some(sub) => {
            element.insert(sub.name.to_string(), value.clone());
        }
        None => merge_complex(def, &mut element, value)?,
    }
    let element = Value::Object(element);
    make_sole_primary(items, &element);
    items.push(element);
    check_no_duplicates(def, items, &[items.len() - 1])?;
    Ok(true)
}

/// `add` / `replace` on the elements a value filter matched. A whole-value `replace` of
/// several elements leaves one element with the new value, where the first was: they would
/// otherwise be equal (RFC 7643 §2.4). Any other change that makes two values equal is
/// refused. `Ok(false)`: nothing was created.
pub(super) fn update_matched(
    op: OpKind,
    def: &AttrDef,
    sub: Option<&AttrDef>,
    value: &Value,
    items: &mut Vec<Value>,
    matched: &[usize],
) -> Result<bool, ScimError> {
    let name = def.name.as_str();
    for &i in matched {
        let element = &mut items[i];
        match sub {
            Some(sub) => {
                check_immutable(sub, element.get(&sub.name))?;
                let obj = element.as_object_mut().ok_or_else(|| {
                    ScimError::invalid_value(format!(
                        "a stored value of \"{name}\" is not an object"
                    ))
                })?;
                if value.is_null() {
                    obj.remove(&sub.name);
                } else {
                    obj.insert(sub.name.to_string(), value.clone());
                }
            }
            None if def.sub.is_empty() => *element = value.clone(),
            None => {
                let mut replacement = match op {
                    OpKind::Replace => Map::new(),
                    _ => element.as_object().cloned().unwrap_or_default(),
                };
                merge_complex(def, &mut replacement, value)?;
                *element = Value::Object(replacement);
            }
        }
    }
    let mut touched = matched.to_vec();
    if op == OpKind::Replace && sub.is_none() && matched.len() > 1 {
        for &i in matched[1..].iter().rev() {
            items.remove(i);
        }
        touched.truncate(1);
    }
    if sets_primary(sub, value) {
        // The element just written becomes the only primary (RFC 7643 §2.4).
        if let Some(&first) = touched.first() {
            let chosen = items[first].clone();
            make_sole_primary(items, &chosen);
        }
    }
    check_no_duplicates(def, items, &touched)?;
    // An element whose last sub-attribute was unassigned is no value at all.
    items.retain(|e| e.as_object().is_none_or(|o| !o.is_empty()));
    Ok(false)
}

/// Refuses a change that left one of the `touched` elements equal to another element.
pub(super) fn check_no_duplicates(
    def: &AttrDef,
    items: &[Value],
    touched: &[usize],
) -> Result<(), ScimError> {
    for &i in touched {
        for (j, other) in items.iter().enumerate() {
            if i != j && i < items.len() && duplicate(def, &items[i], other) {
                return Err(ScimError::invalid_value(format!(
                    "the operation would leave two equal values in \"{}\" ({}); a multi-valued attribute holds each value once (RFC 7643 §2.4)",
                    def.name, items[i]
                )));
            }
        }
    }
    Ok(())
}

/// Two elements are duplicates when their `value` (compared as the schema says) and `type`
/// are the same; elements without a `value` sub-attribute (addresses) when they are equal.
pub(super) fn duplicate(def: &AttrDef, a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        // Emptied elements are dropped afterwards; they are not values.
        (Some(x), Some(y)) if x.is_empty() || y.is_empty() => false,
        (Some(x), Some(y)) => {
            let Some(value_def) = def.sub_attr("value") else {
                return x == y;
            };
            fn text<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
                get_ci(o, k).and_then(Value::as_str)
            }
            let same_v = match (text(x, "value"), text(y, "value")) {
                (Some(p), Some(q)) if value_def.case_exact => p == q,
                (Some(p), Some(q)) => filter::fold_case(p) == filter::fold_case(q),
                (None, None) => get_ci(x, "value") == get_ci(y, "value"),
                _ => false,
            };
            let same_type = match (text(x, "type"), text(y, "type")) {
                (Some(p), Some(q)) => p.eq_ignore_ascii_case(q),
                (None, None) => true,
                _ => false,
            };
            same_v && same_type
        }
        _ => match (a.as_str(), b.as_str()) {
            (Some(p), Some(q)) if !def.case_exact => filter::fold_case(p) == filter::fold_case(q),
            _ => a == b,
        },
    }
}

/// `members[value eq "a" or value eq "b"]` becomes a removal by id (one row each); any other
/// filter is evaluated by the store on each member.
pub(super) fn member_removal(f: &Filter) -> MemberChange {
    let mut ids = Vec::new();
    if ids_of(f, &mut ids) {
        MemberChange::Remove(ids)
    } else {
        MemberChange::RemoveWhere(f.clone())
    }
}

pub(super) fn ids_of(f: &Filter, out: &mut Vec<String>) -> bool {
    match f {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: Value::String(id),
        } if path.urn.is_none()
            && path.sub.is_none()
            && path.attr.eq_ignore_ascii_case("value") =>
        {
            out.push(id.clone());
            true
        }
        Filter::Or(a, b) => ids_of(a, out) && ids_of(b, out),
        _ => false,
    }
}

/// The element a filter of `eq` comparisons joined by `and` describes, e.g.
/// `type eq "work"` → `{"type": "work"}`; `None` for any other filter.
pub(super) fn element_from_filter(def: &AttrDef, f: &Filter) -> Option<Map<String, Value>> {
    fn collect(def: &AttrDef, f: &Filter, out: &mut Map<String, Value>) -> bool {
        match f {
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value,
            } if path.urn.is_none() && path.sub.is_none() && !value.is_null() => {
                match def.sub_attr(&path.attr) {
                    Some(sub) => {
                        out.insert(sub.name.to_string(), value.clone());
                        true
                    }
                    None => false,
                }
            }
            Filter::And(a, b) => collect(def, a, out) && collect(def, b, out),
            _ => false,
        }
    }
    let mut out = Map::new();
    collect(def, f, &mut out).then_some(out)
}

/// Merges the members of `value` (a JSON object) into `into`, with canonical sub-attribute
/// names; `null` members are ignored (Entra sends `"$ref": null`).
pub(super) fn merge_complex(
    def: &AttrDef,
    into: &mut Map<String, Value>,
    value: &Value,
) -> Result<(), ScimError> {
    let obj = value
        .as_object()
        .ok_or_else(|| ScimError::invalid_value(format!("\"{}\" needs a JSON object", def.name)))?;
    for (k, v) in obj {
        let sub = def.sub_attr(k).ok_or_else(|| {
            ScimError::invalid_syntax(format!("unknown sub-attribute \"{k}\" of \"{}\"", def.name))
        })?;
        if v.is_null() || sub.mutability == Mutability::ReadOnly {
            continue;
        }
        into.insert(sub.name.to_string(), v.clone());
    }
    Ok(())
}

/// Two values of a multi-valued attribute are the same value when their `value` (compared
/// as the schema says) and `type` agree; simple values when they are equal.
pub(super) fn same_value(def: &AttrDef, a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            let Some(value_def) = def.sub_attr("value") else {
                return x == y;
            };
            let text = |o: &Map<String, Value>, k: &str| {
                get_ci(o, k).and_then(Value::as_str).map(str::to_string)
            };
            let (va, vb) = (text(x, "value"), text(y, "value"));
            let same_v = match (&va, &vb) {
                (Some(p), Some(q)) if value_def.case_exact => p == q,
                (Some(p), Some(q)) => filter::fold_case(p) == filter::fold_case(q),
                _ => false,
            };
            let same_type = match (text(x, "type"), text(y, "type")) {
                (Some(p), Some(q)) => p.eq_ignore_ascii_case(&q),
                (None, None) => true,
                // Entra's remove-by-value names only the value.
                (Some(_), None) | (None, Some(_)) => true,
            };
            same_v && same_type
        }
        _ => a == b,
    }
}

pub(super) fn is_primary(v: &Value) -> bool {
    v.get("primary").is_some_and(|p| {
        p == &Value::Bool(true) || p.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
    })
}

pub(super) fn sets_primary(sub: Option<&AttrDef>, value: &Value) -> bool {
    match sub {
        Some(s) if s.name == "primary" => {
            value == &Value::Bool(true)
                || value
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case("true"))
        }
        Some(_) => false,
        None => is_primary(value),
    }
}

/// When `incoming` is primary, every other value stops being primary (RFC 7643 §2.4: at most
/// one primary value).
pub(super) fn make_sole_primary(items: &mut [Value], incoming: &Value) {
    if !is_primary(incoming) {
        return;
    }
    for e in items.iter_mut() {
        if e != incoming {
            if let Some(obj) = e.as_object_mut() {
                if obj.contains_key("primary") {
                    obj.insert("primary".into(), Value::Bool(false));
                }
            }
        }
    }
}

pub(super) fn check_immutable(def: &AttrDef, current: Option<&Value>) -> Result<(), ScimError> {
    if def.mutability == Mutability::Immutable && current.is_some_and(|v| !v.is_null()) {
        return Err(mutability(format!(
            "\"{}\" is immutable once set",
            def.name
        )));
    }
    Ok(())
}
