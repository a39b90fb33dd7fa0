//! PATCH (RFC 7644 §3.5.2): parsing a PatchOp request, normalising the IdPs' dialects, and
//! applying the operations to a resource document. Pure: the caller runs [`apply`] inside
//! its write transaction and stores the outcome only if every operation succeeded.
//!
//! Group membership is never part of the document: operations on `members` become
//! [`MemberChange`]s the store applies as row deltas, so adding one member to a group of
//! 100,000 touches one row.
//!
//! Value shapes never widen a change: a `remove` with a value on a multi-valued attribute
//! removes exactly the listed values (an array, or one object) and refuses any other shape;
//! elsewhere `remove` takes no value. `null` adds nothing with `add` (never creating a value
//! from a filter) and unassigns with `replace`. No operation leaves two equal values in a
//! multi-valued attribute (RFC 7643 §2.4). An extension object is a complex value: its
//! attributes not in the value stay. `tests/it/patch_shapes.rs` holds the whole table.
//!
//! Dialect steps (each logs at debug when it fires and is reported as a [`Quirk`]):
//! op names in any case, booleans as strings, Entra's remove-members-by-value, path-less
//! values with dotted or URN-qualified keys, `add` on a filtered path that matches nothing,
//! a single complex value sent inside an array, Okta's path-less `{id, displayName}`, and a
//! `schemas` member inside an extension value.

use serde_json::{Map, Value};

use super::filter::{self, AttrPath, CompareOp, Filter, PatchPath};
use super::path::{PathError, Target};
use super::resource::{self, MemberInput};
use super::schema::{AttrDef, AttrType, Extension, Mutability, ResourceSchema};
use super::{ResourceKind, ScimError, ScimType};

pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Most operations accepted in one request (the body limit bounds their size).
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

/// One operation, parsed. `path: None` is the path-less form. The path is resolved against
/// the schema registry when the operations are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// A change to a group's membership, applied by the store in order, each costing work in
/// proportion to its own size (except `Replace`, which compares against the whole group).
#[derive(Debug, Clone, PartialEq)]
pub enum MemberChange {
    /// Adds members; an existing member stays as it is. Every id must exist in the tenant.
    Add(Vec<MemberInput>),
    /// Removes these member ids; ids that are not members are ignored.
    Remove(Vec<String>),
    /// Removes the members a value filter selects, evaluated on `{value, display, type}`.
    RemoveWhere(Filter),
    /// Removes every member.
    Clear,
    /// Makes the membership exactly this list.
    Replace(Vec<MemberInput>),
}

/// The password after the operations (cleartext; the caller hashes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChange {
    Keep,
    Set(String),
    Clear,
}

/// A non-RFC shape an IdP sends that this engine accepts, named for counting and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quirk {
    /// `"op":"Replace"`: Entra ID without `aadOptscim062020` (entra.md Q1).
    OpNameCase,
    /// `"value":"False"` for a boolean: Entra ID (entra.md Q2).
    StringBoolean,
    /// `{"op":"Remove","path":"members","value":[{"value":"id"}]}`: Entra ID (entra.md Q3).
    RemoveByValue,
    /// Path-less value with `name.givenName` or `urn:…:employeeNumber` keys (entra.md Q4).
    DottedOrUrnKeys,
    /// `add` on `emails[type eq "work"].value` with no work email creates it (entra.md Q5).
    AddCreatesFilteredValue,
    /// A single-valued complex attribute sent as a one-element array, e.g. Entra's
    /// `manager` (entra.md §3.15).
    SingleValueInArray,
    /// Okta's path-less `{"id": …, "displayName": …}` group rename (okta.md §3).
    PathlessId,
    /// A `schemas` member inside an extension or path-less value.
    SchemasInValue,
}

impl Quirk {
    pub fn name(self) -> &'static str {
        match self {
            Quirk::OpNameCase => "op-name-case",
            Quirk::StringBoolean => "string-boolean",
            Quirk::RemoveByValue => "remove-by-value",
            Quirk::DottedOrUrnKeys => "dotted-or-urn-keys",
            Quirk::AddCreatesFilteredValue => "add-creates-filtered-value",
            Quirk::SingleValueInArray => "single-value-in-array",
            Quirk::PathlessId => "pathless-id",
            Quirk::SchemasInValue => "schemas-in-value",
        }
    }
}

/// The quirks that fired on one request, each once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Quirks(Vec<Quirk>);

impl Quirks {
    fn note(&mut self, q: Quirk) {
        if !self.0.contains(&q) {
            log::debug!("PATCH dialect step applied: {}", q.name());
            self.0.push(q);
        }
    }
    pub fn list(&self) -> &[Quirk] {
        &self.0
    }
}

/// What the operations produced: the new document (validated against the schema), the
/// membership changes and the password.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub doc: Map<String, Value>,
    pub members: Vec<MemberChange>,
    pub password: PasswordChange,
}

fn invalid_path(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidPath, detail)
}

fn no_target(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::NoTarget, detail)
}

fn mutability(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::Mutability, detail)
}

/// Looks up a member of a JSON object by name, case-insensitively.
fn get_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

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

fn at_operation(mut e: ScimError, index: usize) -> ScimError {
    e.detail = format!("operation {}: {}", index + 1, e.detail);
    e
}

fn parse_operation(v: &Value, quirks: &mut Quirks) -> Result<Operation, ScimError> {
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

/// A path resolved against the schema: an attribute, maybe one of its sub-attributes, maybe a
/// value filter.
struct Resolved<'r> {
    /// The extension whose object holds the attribute, or `None` for core attributes.
    ext: Option<&'r Extension>,
    def: &'r AttrDef,
    filter: Option<Filter>,
    sub: Option<&'r AttrDef>,
}

impl Resolved<'_> {
    fn ext_key(&self) -> Option<&str> {
        self.ext.map(|e| e.schema.urn.as_str())
    }
}

/// What a PATCH path names.
enum PatchTarget<'r> {
    Attribute(Resolved<'r>),
    Extension(&'r Extension),
}

fn path_error(e: PathError) -> ScimError {
    invalid_path(e.to_string())
}

fn resolve<'r>(rs: &'r ResourceSchema, path: &PatchPath) -> Result<PatchTarget<'r>, ScimError> {
    let attr_path = AttrPath {
        urn: path.urn.clone(),
        attr: path.attr.clone(),
        sub: path.sub.clone(),
    };
    let r = match rs.target(&attr_path).map_err(path_error)? {
        Target::Extension(e) if path.filter.is_none() => return Ok(PatchTarget::Extension(e)),
        Target::Extension(e) => {
            return Err(invalid_path(format!(
                "\"{}\" is a schema; a value filter needs a multi-valued attribute",
                e.schema.urn
            )))
        }
        Target::CoreSchema => {
            return Err(invalid_path(format!(
                "\"{}\" names the core schema, not an attribute",
                rs.core.urn
            )))
        }
        Target::Attribute(r) => r,
    };
    let def = r.attr;
    if r.ext.is_none() && (def.is("meta") || def.is("id")) {
        return Err(mutability(format!("\"{}\" is read-only", def.name)));
    }
    if def.mutability == Mutability::ReadOnly {
        return Err(mutability(format!("\"{}\" is read-only", def.name)));
    }
    if path.filter.is_some() && !def.multi {
        return Err(invalid_path(format!(
            "\"{}\" is single-valued; a value filter needs a multi-valued attribute",
            def.name
        )));
    }
    if let Some(sub) = r.sub {
        if sub.mutability == Mutability::ReadOnly {
            return Err(mutability(format!(
                "\"{}.{}\" is read-only",
                def.name, sub.name
            )));
        }
        if def.multi && path.filter.is_none() {
            return Err(invalid_path(format!(
                "\"{}.{}\" names a sub-attribute of every value; select values with a filter, e.g. {}[type eq \"work\"].{}",
                def.name, sub.name, def.name, sub.name
            )));
        }
    }
    Ok(PatchTarget::Attribute(Resolved {
        ext: r.ext,
        def,
        filter: path.filter.clone(),
        sub: r.sub,
    }))
}

/// The working state while operations run.
struct Work<'a> {
    rs: &'a ResourceSchema,
    id: &'a str,
    doc: Map<String, Value>,
    members: Vec<MemberChange>,
    password: PasswordChange,
    quirks: &'a mut Quirks,
}

/// Applies the operations to a copy of `doc` (the stored document of resource `id`), then
/// re-validates the result against the schema. Any failure leaves nothing to store.
pub fn apply(
    rs: &ResourceSchema,
    id: &str,
    doc: &Map<String, Value>,
    ops: &[Operation],
    quirks: &mut Quirks,
) -> Result<Outcome, ScimError> {
    let mut doc = doc.clone();
    // Values of extensions no longer declared are kept as they are, untouched by the operations.
    let kept = resource::take_undeclared(rs, &mut doc);
    let mut work = Work {
        rs,
        id,
        doc,
        members: Vec::new(),
        password: PasswordChange::Keep,
        quirks,
    };
    for (i, op) in ops.iter().enumerate() {
        work.operation(op).map_err(|e| at_operation(e, i))?;
    }
    let mut valid = resource::validate(rs, &Value::Object(work.doc))?;
    resource::restore_undeclared(&mut valid.doc, kept);
    Ok(Outcome {
        doc: valid.doc,
        members: work.members,
        password: work.password,
    })
}

impl Work<'_> {
    fn operation(&mut self, op: &Operation) -> Result<(), ScimError> {
        let value = op.value.as_ref();
        match &op.path {
            None => {
                let value = value.unwrap_or(&Value::Null);
                self.pathless(op.op, value)
            }
            Some(path) => self.at_path(op.op, path, value),
        }
    }

    /// `{"op":"replace","value":{…}}`: each key is a path (RFC 7644 §3.5.2.1/3).
    fn pathless(&mut self, op: OpKind, value: &Value) -> Result<(), ScimError> {
        let obj = value.as_object().ok_or_else(|| {
            ScimError::invalid_value("without a \"path\", \"value\" must be a JSON object")
        })?;
        for (key, v) in obj {
            if key.eq_ignore_ascii_case("schemas") {
                self.quirks.note(Quirk::SchemasInValue);
                continue;
            }
            if key.eq_ignore_ascii_case("id") {
                // Okta's group rename carries the group's own id (okta.md §3, S10).
                if v.as_str() == Some(self.id) {
                    self.quirks.note(Quirk::PathlessId);
                    continue;
                }
                return Err(mutability("\"id\" is read-only"));
            }
            if let Some(ext) = self.rs.extension(key) {
                self.extension(op, ext, Some(v))?;
                continue;
            }
            if key.contains('.') || key.to_ascii_lowercase().starts_with("urn:") {
                self.quirks.note(Quirk::DottedOrUrnKeys);
            }
            let path = filter::parse_path(key)?;
            if path.filter.is_some() {
                return Err(invalid_path(format!(
                    "a key of a path-less value cannot hold a filter: \"{key}\""
                )));
            }
            if let Some(e) = self.undeclared_extension_key(&path, key, v) {
                return Err(e);
            }
            self.at_path(op, &path, Some(v))?;
        }
        Ok(())
    }

    /// A path-less key that is a URN this resource type does not know, holding an object:
    /// an undeclared extension (Entra's `{"urn:…:CustomExtensionName:2.0:User": {…}}`), named
    /// as such rather than as an attribute `User` of `urn:…:2.0`.
    fn undeclared_extension_key(
        &self,
        path: &PatchPath,
        key: &str,
        v: &Value,
    ) -> Option<ScimError> {
        let obj = v.as_object()?;
        let as_written = AttrPath {
            urn: path.urn.clone(),
            attr: path.attr.clone(),
            sub: path.sub.clone(),
        };
        if !matches!(
            self.rs.target(&as_written),
            Err(PathError::UnknownSchema { .. })
        ) {
            return None;
        }
        let attr = AttrPath {
            urn: Some(key.to_string()),
            attr: obj
                .keys()
                .find(|k| !k.eq_ignore_ascii_case("schemas"))?
                .clone(),
            sub: None,
        };
        match self.rs.target(&attr) {
            Err(e @ PathError::UnknownSchema { .. }) => Some(path_error(e)),
            _ => None,
        }
    }

    /// A whole extension object as the path, or as a key of a path-less value. The extension
    /// is a complex value: `add` and `replace` apply each attribute in the value with the same
    /// op, and attributes not in the value stay (RFC 7644 §3.5.2.1, §3.5.2.3), as for `name`.
    fn extension(
        &mut self,
        op: OpKind,
        ext: &Extension,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let urn = ext.schema.urn.as_str();
        match (op, value) {
            (OpKind::Remove, None | Some(Value::Null)) => {
                self.doc.remove(urn);
                return Ok(());
            }
            (OpKind::Remove, Some(_)) => return Err(remove_takes_no_value(urn)),
            // A null value unassigns with replace and adds nothing with add.
            (OpKind::Replace, None | Some(Value::Null)) => {
                self.doc.remove(urn);
                return Ok(());
            }
            (_, None | Some(Value::Null)) => return Ok(()),
            _ => {}
        }
        let obj = value.and_then(Value::as_object).ok_or_else(|| {
            ScimError::invalid_value(format!("the value for \"{urn}\" must be a JSON object"))
        })?;
        for (key, v) in obj {
            if key.eq_ignore_ascii_case("schemas") {
                self.quirks.note(Quirk::SchemasInValue);
                continue;
            }
            let mut path = filter::parse_path(key)?;
            if path.urn.is_some() || path.filter.is_some() {
                return Err(invalid_path(format!(
                    "\"{key}\" is not an attribute of \"{urn}\""
                )));
            }
            path.urn = Some(urn.to_string());
            self.at_path(op, &path, Some(v))?;
        }
        Ok(())
    }

    fn at_path(
        &mut self,
        op: OpKind,
        path: &PatchPath,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        let target = match resolve(self.rs, path)? {
            PatchTarget::Attribute(t) => t,
            PatchTarget::Extension(ext) => return self.extension(op, ext, value),
        };
        if let Some(v) = value {
            self.note_string_booleans(target.sub.unwrap_or(target.def), v);
        }
        if self.rs.kind == ResourceKind::Group && target.ext.is_none() && target.def.is("members") {
            return self.members(op, &target, value);
        }
        if target.ext.is_none() && target.def.is("password") {
            return self.password_op(op, value);
        }
        match op {
            OpKind::Remove => self.remove(&target, value),
            OpKind::Add | OpKind::Replace => {
                let v = value.unwrap_or(&Value::Null);
                self.set(op, &target, v)
            }
        }
    }

    fn note_string_booleans(&mut self, def: &AttrDef, v: &Value) {
        let found = match (def.ty, v) {
            (AttrType::Boolean, Value::String(_)) => true,
            (AttrType::Complex, Value::Object(o)) => o.iter().any(|(k, sv)| {
                def.sub_attr(k)
                    .is_some_and(|s| s.ty == AttrType::Boolean && sv.is_string())
            }),
            (AttrType::Complex, Value::Array(items)) => items.iter().any(|item| {
                item.as_object().is_some_and(|o| {
                    o.iter().any(|(k, sv)| {
                        def.sub_attr(k)
                            .is_some_and(|s| s.ty == AttrType::Boolean && sv.is_string())
                    })
                })
            }),
            _ => false,
        };
        if found {
            // Normalised by the final validation (resource::validate), entra.md Q2.
            self.quirks.note(Quirk::StringBoolean);
        }
    }

    fn password_op(&mut self, op: OpKind, value: Option<&Value>) -> Result<(), ScimError> {
        self.password = match (op, value) {
            (OpKind::Remove, None | Some(Value::Null)) => PasswordChange::Clear,
            (OpKind::Remove, Some(_)) => return Err(remove_takes_no_value("password")),
            (OpKind::Replace, Some(Value::Null)) => PasswordChange::Clear,
            // `add` with null adds nothing.
            (OpKind::Add, Some(Value::Null)) => return Ok(()),
            (_, Some(Value::String(p))) => {
                if p.len() > resource::MAX_STRING_LEN {
                    return Err(ScimError::invalid_value("\"password\" is too long"));
                }
                PasswordChange::Set(p.clone())
            }
            _ => return Err(ScimError::invalid_value("\"password\" must be a string")),
        };
        Ok(())
    }

    /// The object that holds `target`: the document, or its extension object.
    fn container(&mut self, target: &Resolved) -> Result<&mut Map<String, Value>, ScimError> {
        match target.ext_key() {
            None => Ok(&mut self.doc),
            Some(urn) => {
                let slot = self
                    .doc
                    .entry(urn.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                slot.as_object_mut()
                    .ok_or_else(|| ScimError::invalid_syntax(format!("\"{urn}\" is not an object")))
            }
        }
    }

    fn set(&mut self, op: OpKind, target: &Resolved, value: &Value) -> Result<(), ScimError> {
        let def = target.def;
        let mut value = value.clone();
        if !def.multi && def.ty == AttrType::Complex && target.sub.is_none() {
            if let Value::Array(items) = &value {
                if items.len() == 1 && items[0].is_object() {
                    // Entra's old `manager` shape: a one-element array (entra.md §3.15).
                    self.quirks.note(Quirk::SingleValueInArray);
                    value = items[0].clone();
                }
            }
        }
        if target.filter.is_some() {
            return self.set_filtered(op, target, &value);
        }
        let container = self.container(target)?;
        let name = def.name.as_str();
        if let Some(sub) = target.sub {
            // `name.givenName`: a sub-attribute of a single-valued complex attribute.
            if value.is_null() {
                // Replace with null unassigns; add with null adds nothing.
                if op == OpKind::Replace {
                    check_immutable(sub, container.get(name).and_then(|c| c.get(&sub.name)))?;
                    if let Some(obj) = container.get_mut(name).and_then(Value::as_object_mut) {
                        obj.remove(&sub.name);
                        if obj.is_empty() {
                            container.remove(name);
                        }
                    }
                }
                return Ok(());
            }
            let slot = container
                .entry(name.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            check_immutable(sub, slot.get(&sub.name))?;
            if let Some(obj) = slot.as_object_mut() {
                obj.insert(sub.name.to_string(), value);
            }
            return Ok(());
        }
        check_immutable(def, container.get(name))?;
        if value.is_null() {
            // A null value unassigns the attribute with replace (RFC 7643 §2.5) and adds
            // nothing with add.
            if op == OpKind::Replace {
                container.remove(name);
            }
            return Ok(());
        }
        if def.multi {
            let new_items = match value {
                Value::Array(items) => items,
                single => vec![single],
            };
            if new_items.iter().any(Value::is_null) {
                return Err(ScimError::invalid_value(format!(
                    "\"{name}\" cannot hold null values"
                )));
            }
            let mut items = match (op, container.remove(name)) {
                (OpKind::Add, Some(Value::Array(existing))) => existing,
                _ => Vec::new(),
            };
            for item in new_items {
                let item = match (def.ty, &item) {
                    (AttrType::Complex, Value::Object(_)) => {
                        let mut m = Map::new();
                        merge_complex(def, &mut m, &item)?;
                        Value::Object(m)
                    }
                    _ => item,
                };
                make_sole_primary(&mut items, &item);
                match items.iter().position(|e| same_value(def, e, &item)) {
                    // Adding a value that is already there is a no-op, or refreshes its
                    // other sub-attributes (RFC 7644 §3.5.2.1).
                    Some(i) => {
                        if let (Some(existing), Value::Object(_)) =
                            (items[i].as_object_mut(), &item)
                        {
                            let mut merged = existing.clone();
                            merge_complex(def, &mut merged, &item)?;
                            *existing = merged;
                        }
                    }
                    None => items.push(item),
                }
            }
            if !items.is_empty() {
                container.insert(name.to_string(), Value::Array(items));
            }
            return Ok(());
        }
        if def.ty == AttrType::Complex {
            // Add and replace both merge into a complex attribute: unnamed sub-attributes
            // stay (RFC 7644 §3.5.2.1, §3.5.2.3).
            let mut obj = container
                .get(name)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            match &value {
                Value::Object(_) => merge_complex(def, &mut obj, &value)?,
                Value::String(s) if def.sub_attr("value").is_some() => {
                    obj.insert("value".into(), Value::String(s.clone()));
                }
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "\"{name}\" must be a JSON object"
                    )))
                }
            }
            if obj.is_empty() {
                container.remove(name);
            } else {
                container.insert(name.to_string(), Value::Object(obj));
            }
            return Ok(());
        }
        container.insert(name.to_string(), value);
        Ok(())
    }

    /// `add` / `replace` on `attr[filter]` or `attr[filter].sub`.
    fn set_filtered(
        &mut self,
        op: OpKind,
        target: &Resolved,
        value: &Value,
    ) -> Result<(), ScimError> {
        let def = target.def;
        let name = def.name.as_str();
        let Some(f) = &target.filter else {
            return Err(ScimError::internal());
        };
        if value.is_null() {
            match (op, target.sub) {
                // Add with null adds nothing, and never creates a value (RFC 7644 §3.5.2.1
                // requires a value to add).
                (OpKind::Add, _) => return Ok(()),
                (_, None) => {
                    return Err(ScimError::invalid_value(format!(
                        "replace on a value filter needs the new value; to remove the values of \"{name}\" the filter selects, use remove"
                    )))
                }
                (_, Some(_)) => {}
            }
        }
        let container = self.container(target)?;
        let mut items = match container.remove(name) {
            Some(Value::Array(items)) => items,
            Some(other) => vec![other],
            None => Vec::new(),
        };
        let matched: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, e)| filter::matches_value(f, def, e))
            .map(|(i, _)| i)
            .collect();
        let outcome = if matched.is_empty() {
            if op == OpKind::Replace {
                Err(no_target(format!(
                    "no value of \"{name}\" matches the filter"
                )))
            } else {
                // `add` where nothing matches: build the value the filter describes
                // (Entra's `emails[type eq "work"].value`, entra.md Q5).
                add_described_value(def, f, target.sub, value, &mut items)
            }
        } else {
            update_matched(op, def, target.sub, value, &mut items, &matched)
        };
        let created = matches!(outcome, Ok(true));
        if !items.is_empty() {
            container.insert(name.to_string(), Value::Array(items));
        }
        outcome?;
        if created {
            self.quirks.note(Quirk::AddCreatesFilteredValue);
        }
        Ok(())
    }

    fn remove(&mut self, target: &Resolved, value: Option<&Value>) -> Result<(), ScimError> {
        let def = target.def;
        let name = def.name.as_str();
        if def.required && target.sub.is_none() && target.filter.is_none() {
            return Err(ScimError::invalid_value(format!(
                "\"{name}\" is required and cannot be removed"
            )));
        }
        let whole_multi = def.multi && target.filter.is_none() && target.sub.is_none();
        let by_value = match value {
            None => None,
            Some(v) if whole_multi => Some(values_to_remove(def, v)?),
            // Where the path alone says what goes, a null value adds nothing to it.
            Some(Value::Null) => None,
            Some(_) => return Err(remove_takes_no_value(&target_name(target))),
        };
        if by_value.is_some() {
            self.quirks.note(Quirk::RemoveByValue);
        }
        let container = self.container(target)?;
        if let Some(f) = &target.filter {
            let Some(Value::Array(items)) = container.get_mut(name) else {
                return Err(no_target(format!("\"{name}\" has no values")));
            };
            let before = items.len();
            match target.sub {
                None => items.retain(|e| !filter::matches_value(f, def, e)),
                Some(sub) => {
                    let mut hit = Vec::new();
                    for (i, e) in items.iter_mut().enumerate() {
                        if filter::matches_value(f, def, e) {
                            hit.push(i);
                            if let Some(obj) = e.as_object_mut() {
                                obj.remove(&sub.name);
                            }
                        }
                    }
                    if hit.is_empty() {
                        return Err(no_target(format!(
                            "no value of \"{name}\" matches the filter"
                        )));
                    }
                    check_no_duplicates(def, items, &hit)?;
                    items.retain(|e| e.as_object().is_none_or(|o| !o.is_empty()));
                }
            }
            if target.sub.is_none() && items.len() == before {
                return Err(no_target(format!(
                    "no value of \"{name}\" matches the filter"
                )));
            }
            if items.is_empty() {
                container.remove(name);
            }
        } else if let Some(sub) = target.sub {
            if let Some(obj) = container.get_mut(name).and_then(Value::as_object_mut) {
                obj.remove(&sub.name);
                if obj.is_empty() {
                    container.remove(name);
                }
            }
        } else if let Some(values) = by_value {
            // Remove-by-value (Entra's members shape, entra.md Q3, for every multi-valued
            // attribute): only the listed values go.
            if let Some(Value::Array(items)) = container.get_mut(name) {
                items.retain(|e| !values.iter().any(|v| same_value(def, e, v)));
                if items.is_empty() {
                    container.remove(name);
                }
            }
        } else {
            container.remove(name);
        }
        if let Some(urn) = target.ext_key() {
            if self
                .doc
                .get(urn)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
            {
                self.doc.remove(urn);
            }
        }
        Ok(())
    }

    /// Operations on Group `members` become membership changes for the store. The value
    /// shapes follow the rules of every other multi-valued attribute: an array or one object
    /// names members; `null` adds nothing, unassigns with a whole `replace`, and is refused
    /// where it would have to be guessed at; any other shape is refused.
    fn members(
        &mut self,
        op: OpKind,
        target: &Resolved,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        if target.sub.is_some() {
            return Err(invalid_path(
                "members are added, replaced or removed whole; their sub-attributes cannot be patched",
            ));
        }
        let list = |v: &Value| -> Result<Vec<MemberInput>, ScimError> {
            match v {
                Value::Array(_) => resource::parse_members(v),
                Value::Object(_) => resource::parse_members(&Value::Array(vec![v.clone()])),
                _ => Err(ScimError::invalid_value(
                    "\"members\" must be an array of {\"value\": id} objects",
                )),
            }
        };
        match (op, &target.filter, value) {
            (OpKind::Add, None, None | Some(Value::Null)) => {}
            (OpKind::Add, None, Some(v)) => {
                let add = list(v)?;
                if !add.is_empty() {
                    self.members.push(MemberChange::Add(add));
                }
            }
            (OpKind::Add, Some(_), _) => {
                return Err(invalid_path(
                    "add members with \"path\": \"members\" and the members in \"value\"",
                ))
            }
            // Okta's "Push now": replace with the full list, possibly `[]` (okta.md §3); null
            // unassigns, as for any attribute (RFC 7643 §2.5).
            (OpKind::Replace, None, None | Some(Value::Null)) => {
                self.members.push(MemberChange::Replace(Vec::new()))
            }
            (OpKind::Replace, None, Some(v)) => self.members.push(MemberChange::Replace(list(v)?)),
            (OpKind::Replace, Some(_), None | Some(Value::Null)) => {
                return Err(ScimError::invalid_value(
                    "replace on a value filter needs the new members; to remove the members the filter selects, use remove",
                ))
            }
            (OpKind::Replace, Some(f), Some(v)) => {
                let add = list(v)?;
                if add.is_empty() {
                    return Err(ScimError::invalid_value(
                        "replace on a value filter needs the new members; to remove the members the filter selects, use remove",
                    ));
                }
                self.members.push(member_removal(f));
                self.members.push(MemberChange::Add(add));
            }
            (OpKind::Remove, Some(f), None | Some(Value::Null)) => {
                self.members.push(member_removal(f))
            }
            (OpKind::Remove, Some(_), Some(_)) => {
                return Err(remove_takes_no_value("members[…]"))
            }
            (OpKind::Remove, None, None) => self.members.push(MemberChange::Clear),
            (OpKind::Remove, None, Some(v)) => {
                // Entra's remove-by-value (entra.md Q3): only the listed members go.
                values_to_remove(target.def, v)?;
                self.quirks.note(Quirk::RemoveByValue);
                let ids: Vec<String> = list(v)?.into_iter().map(|m| m.value).collect();
                if !ids.is_empty() {
                    self.members.push(MemberChange::Remove(ids));
                }
            }
        }
        Ok(())
    }
}

/// `remove` with a value on a whole multi-valued attribute: the values to remove, as an
/// array or one object. Anything else would have to be read as "remove everything", which
/// is never what a client that sent a value meant; it is refused.
fn values_to_remove(def: &AttrDef, v: &Value) -> Result<Vec<Value>, ScimError> {
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

fn remove_takes_no_value(name: &str) -> ScimError {
    ScimError::invalid_value(format!(
        "a remove of \"{name}\" takes no \"value\"; the path alone says what to remove"
    ))
}

/// The attribute a resolved path names, for messages.
fn target_name(target: &Resolved) -> String {
    match target.sub {
        Some(sub) => format!("{}.{}", target.def.name, sub.name),
        None => target.def.name.to_string(),
    }
}

/// `add` on a value filter that matches nothing: appends the element the filter describes
/// with the value merged in. `Ok(true)` when an element was added.
fn add_described_value(
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
fn update_matched(
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
fn check_no_duplicates(def: &AttrDef, items: &[Value], touched: &[usize]) -> Result<(), ScimError> {
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
fn duplicate(def: &AttrDef, a: &Value, b: &Value) -> bool {
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
fn member_removal(f: &Filter) -> MemberChange {
    let mut ids = Vec::new();
    if ids_of(f, &mut ids) {
        MemberChange::Remove(ids)
    } else {
        MemberChange::RemoveWhere(f.clone())
    }
}

fn ids_of(f: &Filter, out: &mut Vec<String>) -> bool {
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
fn element_from_filter(def: &AttrDef, f: &Filter) -> Option<Map<String, Value>> {
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
fn merge_complex(
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
fn same_value(def: &AttrDef, a: &Value, b: &Value) -> bool {
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

fn is_primary(v: &Value) -> bool {
    v.get("primary").is_some_and(|p| {
        p == &Value::Bool(true) || p.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
    })
}

fn sets_primary(sub: Option<&AttrDef>, value: &Value) -> bool {
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
fn make_sole_primary(items: &mut [Value], incoming: &Value) {
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

fn check_immutable(def: &AttrDef, current: Option<&Value>) -> Result<(), ScimError> {
    if def.mutability == Mutability::Immutable && current.is_some_and(|v| !v.is_null()) {
        return Err(mutability(format!(
            "\"{}\" is immutable once set",
            def.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::Registry;
    use crate::scim::ENTERPRISE_URN;
    use serde_json::json;
    use std::sync::LazyLock;

    const ID: &str = "u1";

    static REG: LazyLock<Registry> = LazyLock::new(Registry::builtin);

    fn body(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP_URN], "Operations": ops})
    }

    fn run_on(kind: ResourceKind, doc: Value, ops: Value) -> Result<(Outcome, Quirks), ScimError> {
        let mut quirks = Quirks::default();
        let parsed = parse(&body(ops), &mut quirks)?;
        let doc = doc.as_object().cloned().unwrap_or_default();
        let out = apply(REG.resource(kind), ID, &doc, &parsed, &mut quirks)?;
        Ok((out, quirks))
    }

    fn user(ops: Value) -> Result<(Outcome, Quirks), ScimError> {
        run_on(ResourceKind::User, alice(), ops)
    }

    fn alice() -> Value {
        json!({
            "userName": "alice",
            "displayName": "Alice",
            "active": true,
            "name": {"givenName": "Alice", "familyName": "Smith"},
            "emails": [
                {"value": "alice@work.example", "type": "work", "primary": true},
                {"value": "alice@home.example", "type": "home"}
            ],
            ENTERPRISE_URN: {"department": "Sales"}
        })
    }

    fn doc(r: Result<(Outcome, Quirks), ScimError>) -> Value {
        match r {
            Ok((o, _)) => Value::Object(o.doc),
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }

    fn err(r: Result<(Outcome, Quirks), ScimError>) -> ScimError {
        match r {
            Ok((o, _)) => panic!("expected an error, got {:?}", o.doc),
            Err(e) => e,
        }
    }

    fn quirks(r: &Result<(Outcome, Quirks), ScimError>) -> Vec<Quirk> {
        r.as_ref()
            .map(|(_, q)| q.list().to_vec())
            .unwrap_or_default()
    }

    fn group(ops: Value) -> Result<(Outcome, Quirks), ScimError> {
        run_on(ResourceKind::Group, json!({"displayName": "Eng"}), ops)
    }

    fn members(r: Result<(Outcome, Quirks), ScimError>) -> Vec<MemberChange> {
        match r {
            Ok((o, _)) => o.members,
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }

    fn ids(list: &[&str]) -> Vec<MemberInput> {
        list.iter()
            .map(|v| MemberInput {
                value: v.to_string(),
                kind: None,
            })
            .collect()
    }

    // --- request shape ---

    #[test]
    fn request_shape_errors() {
        let mut q = Quirks::default();
        for (b, scim_type) in [
            (json!([]), ScimType::InvalidSyntax),
            (json!({"Operations": []}), ScimType::InvalidValue),
            (
                json!({"schemas": ["urn:x"], "Operations": [{"op": "add"}]}),
                ScimType::InvalidValue,
            ),
            (json!({"schemas": [PATCH_OP_URN]}), ScimType::InvalidSyntax),
            (
                json!({"schemas": [PATCH_OP_URN], "Operations": []}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": [PATCH_OP_URN], "Operations": [], "x": 1}),
                ScimType::InvalidSyntax,
            ),
            (
                body(json!([{"op": "move", "path": "x", "value": 1}])),
                ScimType::InvalidSyntax,
            ),
            (
                body(json!([{"op": "add", "path": "title"}])),
                ScimType::InvalidSyntax,
            ),
            (body(json!([{"op": "remove"}])), ScimType::NoTarget),
            (
                body(json!([{"op": "add", "path": 5, "value": 1}])),
                ScimType::InvalidPath,
            ),
            (
                body(json!([{"op": "add", "path": "emails[", "value": 1}])),
                ScimType::InvalidPath,
            ),
            (
                body(json!([{"op": "add", "path": "title", "value": 1, "extra": 2}])),
                ScimType::InvalidSyntax,
            ),
            (body(json!(["add"])), ScimType::InvalidSyntax),
        ] {
            let e = parse(&b, &mut q).expect_err(&b.to_string());
            assert_eq!(e.status, 400, "{b}");
            assert_eq!(e.scim_type, Some(scim_type), "{b}: {e:?}");
        }
        let many: Vec<Value> = (0..=MAX_OPERATIONS)
            .map(|_| json!({"op": "add", "path": "title", "value": "x"}))
            .collect();
        assert_eq!(parse(&body(json!(many)), &mut q).unwrap_err().status, 413);
    }

    #[test]
    fn a_value_of_the_wrong_type_is_invalid_value() {
        // RFC 7644 §3.12: a value "not compatible with the ... attribute type" is invalidValue,
        // whether the attribute wants a scalar, an object or an array.
        for r in [
            group(json!([{"op": "add", "path": "members", "value": "u1"}])),
            group(json!([{"op": "replace", "path": "members", "value": 5}])),
            user(json!([{"op": "add", "path": ENTERPRISE_URN, "value": "Sales"}])),
            user(json!([{"op": "replace", "path": "name", "value": ["x"]}])),
            user(json!([{"op": "add", "path": "emails", "value": 5}])),
        ] {
            assert_eq!(err(r).scim_type, Some(ScimType::InvalidValue));
        }
    }

    #[test]
    fn operations_key_and_op_names_are_case_insensitive() {
        let b = json!({"SCHEMAS": [PATCH_OP_URN.to_uppercase()], "operations": [
            {"op": "Replace", "path": "title", "value": "Boss"}]});
        let mut q = Quirks::default();
        let ops = parse(&b, &mut q).unwrap();
        assert_eq!(ops[0].op, OpKind::Replace);
        assert_eq!(q.list(), &[Quirk::OpNameCase]);
        let r = user(json!([{"op": "add", "path": "title", "value": "x"}]));
        assert!(quirks(&r).is_empty(), "lowercase op is not a quirk");
    }

    // --- add ---

    #[test]
    fn add_simple_sub_and_extension_attributes() {
        let d = doc(user(json!([
            {"op": "add", "path": "nickName", "value": "Babs"},
            {"op": "add", "path": "name.middleName", "value": "Q"},
            {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "42"},
            {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "m1"}
        ])));
        assert_eq!(d["nickName"], "Babs");
        assert_eq!(
            d["name"],
            json!({"givenName": "Alice", "familyName": "Smith", "middleName": "Q"})
        );
        assert_eq!(d[ENTERPRISE_URN]["employeeNumber"], "42");
        assert_eq!(d[ENTERPRISE_URN]["department"], "Sales");
        assert_eq!(d[ENTERPRISE_URN]["manager"], json!({"value": "m1"}));
    }

    #[test]
    fn add_to_multi_valued_appends_without_duplicates_and_keeps_one_primary() {
        let d = doc(user(json!([{"op": "add", "path": "emails", "value": [
            {"value": "ALICE@home.example", "type": "home"},
            {"value": "new@x.example", "type": "other", "primary": true}
        ]}])));
        let emails = d["emails"].as_array().unwrap();
        assert_eq!(emails.len(), 3, "{emails:?}");
        assert_eq!(emails[0]["primary"], false);
        assert_eq!(emails[2]["primary"], true);
        let primaries = emails.iter().filter(|e| e["primary"] == true).count();
        assert_eq!(primaries, 1);
    }

    #[test]
    fn add_complex_merges_and_single_value_is_wrapped() {
        let d = doc(user(json!([
            {"op": "add", "path": "name", "value": {"FamilyName": "Jones", "formatted": null}},
            {"op": "add", "path": "phoneNumbers", "value": {"value": "+1 555", "type": "work"}}
        ])));
        assert_eq!(
            d["name"],
            json!({"givenName": "Alice", "familyName": "Jones"})
        );
        assert_eq!(
            d["phoneNumbers"],
            json!([{"value": "+1 555", "type": "work"}])
        );
    }

    #[test]
    fn add_on_a_filter_that_matches_nothing_creates_the_value() {
        // entra.md §3.5 / Q5: a user without a work email.
        let r = run_on(
            ResourceKind::User,
            json!({"userName": "bob"}),
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "bob@work.example"}]),
        );
        assert!(quirks(&r).contains(&Quirk::AddCreatesFilteredValue));
        let d = doc(r);
        assert_eq!(
            d["emails"],
            json!([{"type": "work", "value": "bob@work.example"}])
        );
        // A filter that does not describe a value cannot create one.
        let e = err(run_on(
            ResourceKind::User,
            json!({"userName": "bob"}),
            json!([{"op": "add", "path": "emails[type ne \"work\"].value", "value": "x"}]),
        ));
        assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    }

    #[test]
    fn add_on_a_filter_that_matches_sets_the_sub_attribute() {
        let d = doc(user(
            json!([{"op": "add", "path": "emails[type eq \"work\"].value", "value": "a2@work.example"}]),
        ));
        assert_eq!(d["emails"][0]["value"], "a2@work.example");
        assert_eq!(d["emails"].as_array().unwrap().len(), 2);
    }

    // --- replace ---

    #[test]
    fn entra_legacy_replace_shapes() {
        // entra.md §3.5, verbatim.
        let r = user(json!([
            {"op":"Replace","path":"displayName","value":"Pvlo"},
            {"op":"Replace","path":"emails[type eq \"work\"].value","value":"TestBcwqnm@test.microsoft.com"},
            {"op":"Replace","path":"name.givenName","value":"Gtfd"},
            {"op":"Replace","path":"name.familyName","value":"Pkqf"},
            {"op":"Replace","path":"externalId","value":"Eqpj"},
            {"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"}
        ]));
        assert_eq!(quirks(&r), vec![Quirk::OpNameCase]);
        let d = doc(r);
        assert_eq!(d["displayName"], "Pvlo");
        assert_eq!(
            d["emails"][0],
            json!({"value": "TestBcwqnm@test.microsoft.com", "type": "work", "primary": true})
        );
        assert_eq!(d["emails"][1]["value"], "alice@home.example");
        assert_eq!(
            d["name"],
            json!({"givenName": "Gtfd", "familyName": "Pkqf"})
        );
        assert_eq!(d["externalId"], "Eqpj");
        assert_eq!(
            d[ENTERPRISE_URN],
            json!({"department": "Sales", "employeeNumber": "Eqpj"})
        );
    }

    #[test]
    fn entra_pathless_replace_with_dotted_and_urn_keys() {
        // entra.md §3.6, verbatim.
        let r = user(json!([
            {"op":"replace","path":"emails[type eq \"work\"].value","value":"TestMhvaes@test.microsoft.com"},
            {"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua",
              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}
        ]));
        assert_eq!(quirks(&r), vec![Quirk::DottedOrUrnKeys]);
        let d = doc(r);
        assert_eq!(d["displayName"], "Bjfe");
        assert_eq!(
            d["name"],
            json!({"givenName": "Kkom", "familyName": "Unua"})
        );
        assert_eq!(d[ENTERPRISE_URN]["employeeNumber"], "Aklq");
        assert_eq!(d["emails"][0]["value"], "TestMhvaes@test.microsoft.com");
        assert!(d.get("name.givenName").is_none());
    }

    #[test]
    fn string_booleans_become_booleans() {
        // entra.md §3.7 without the flag.
        let r = user(json!([{"op":"Replace","path":"active","value":"False"}]));
        assert!(quirks(&r).contains(&Quirk::StringBoolean));
        assert_eq!(doc(r)["active"], false);
        let d = doc(user(
            json!([{"op":"Replace","path":"active","value":"True"}]),
        ));
        assert_eq!(d["active"], true);
        let d = doc(user(
            json!([{"op":"replace","path":"emails[type eq \"home\"].primary","value":"True"}]),
        ));
        assert_eq!(d["emails"][1]["primary"], true);
        assert_eq!(d["emails"][0]["primary"], false, "only one primary");
        let e = err(user(
            json!([{"op":"replace","path":"active","value":"maybe"}]),
        ));
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    }

    #[test]
    fn okta_pathless_active_and_password() {
        // okta.md §2.4, verbatim.
        let r = user(json!([{"op":"replace","value":{"active":false}}]));
        let (out, _) = r.as_ref().unwrap();
        assert_eq!(out.doc["active"], false);
        assert_eq!(out.password, PasswordChange::Keep);
        let (out, _) = user(json!([{"op":"replace","value":{"password":"s3cret!"}}])).unwrap();
        assert_eq!(out.password, PasswordChange::Set("s3cret!".into()));
        assert!(!out.doc.contains_key("password"));
        let (out, _) = user(json!([{"op":"remove","path":"password"}])).unwrap();
        assert_eq!(out.password, PasswordChange::Clear);
    }

    #[test]
    fn replace_multi_valued_replaces_all_and_complex_merges() {
        let d = doc(user(json!([
            {"op": "replace", "path": "emails", "value": [{"value": "only@x.example"}]},
            {"op": "replace", "path": "name", "value": {"givenName": "Al"}}
        ])));
        assert_eq!(d["emails"], json!([{"value": "only@x.example"}]));
        assert_eq!(d["name"], json!({"givenName": "Al", "familyName": "Smith"}));
    }

    #[test]
    fn replace_with_filter_replaces_matching_values_or_fails_with_no_target() {
        let d = doc(user(
            json!([{"op": "replace", "path": "emails[type eq \"home\"]",
            "value": {"value": "h2@x.example", "type": "home"}}]),
        ));
        assert_eq!(
            d["emails"][1],
            json!({"value": "h2@x.example", "type": "home"})
        );
        let e = err(user(
            json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": "x"}]),
        ));
        assert_eq!(e.scim_type, Some(ScimType::NoTarget));
    }

    #[test]
    fn replace_of_an_absent_attribute_adds_it_and_null_unassigns() {
        let d = doc(user(json!([
            {"op": "replace", "path": "title", "value": "CTO"},
            {"op": "replace", "path": "displayName", "value": null}
        ])));
        assert_eq!(d["title"], "CTO");
        assert!(d.get("displayName").is_none());
    }

    #[test]
    fn whole_extension_as_path_or_key() {
        let d = doc(user(
            json!([{"op": "replace", "path": ENTERPRISE_URN, "value": {
            "schemas": [ENTERPRISE_URN], "costCenter": "7"}}]),
        ));
        // The extension is a complex value: attributes not sent stay (RFC 7644 §3.5.2.3).
        assert_eq!(
            d[ENTERPRISE_URN],
            json!({"department": "Sales", "costCenter": "7"})
        );
        let d = doc(user(
            json!([{"op": "replace", "value": {ENTERPRISE_URN: {"costCenter": "7"}}}]),
        ));
        assert_eq!(
            d[ENTERPRISE_URN],
            json!({"department": "Sales", "costCenter": "7"})
        );
        // Null unassigns one attribute with replace, or the whole extension.
        let d = doc(user(
            json!([{"op": "replace", "path": ENTERPRISE_URN, "value": {"department": null}}]),
        ));
        assert!(d.get(ENTERPRISE_URN).is_none());
        let d = doc(user(
            json!([{"op": "replace", "path": ENTERPRISE_URN, "value": null}]),
        ));
        assert!(d.get(ENTERPRISE_URN).is_none());
        let r = user(
            json!([{"op": "add", "value": {ENTERPRISE_URN: {"schemas": ["x"], "division": "D"}}}]),
        );
        assert!(quirks(&r).contains(&Quirk::SchemasInValue));
        assert_eq!(
            doc(r)[ENTERPRISE_URN],
            json!({"department": "Sales", "division": "D"})
        );
        let d = doc(user(json!([{"op": "remove", "path": ENTERPRISE_URN}])));
        assert!(d.get(ENTERPRISE_URN).is_none());
    }

    #[test]
    fn manager_as_a_one_element_array() {
        // entra.md §3.15, Example 5.
        let r = user(
            json!([{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "value":[{"$ref":"http://h/Users/m1","value":"m1"}]}]),
        );
        assert!(quirks(&r).contains(&Quirk::SingleValueInArray));
        assert_eq!(doc(r)[ENTERPRISE_URN]["manager"]["value"], "m1");
    }

    #[test]
    fn unqualified_enterprise_names_resolve_to_the_extension_on_users_only() {
        // Entra ID's documented shape (entra.md §3.15): "path":"manager", no URN.
        let r = user(
            json!([{"op":"Add","path":"manager","value":[{"$ref":null,"value":"m1"}]},
            {"op":"replace","path":"department","value":"Retail"}]),
        );
        let d = doc(r);
        assert_eq!(d[ENTERPRISE_URN]["manager"]["value"], "m1");
        assert_eq!(d[ENTERPRISE_URN]["department"], "Retail");
        assert!(d.get("manager").is_none() && d.get("department").is_none());
        // Core names still win, and Groups have no extension.
        assert_eq!(
            doc(user(json!([{"op":"replace","path":"title","value":"T"}])))["title"],
            "T"
        );
        let e = err(group(
            json!([{"op":"add","path":"manager","value":{"value":"m1"}}]),
        ));
        assert_eq!(e.status, 400);
    }

    // --- remove ---

    #[test]
    fn remove_simple_sub_filtered_and_whole_multi_valued() {
        let d = doc(user(json!([
            {"op": "remove", "path": "displayName"},
            {"op": "remove", "path": "name.familyName"},
            {"op": "remove", "path": "emails[type eq \"home\"]"},
            {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}
        ])));
        assert!(d.get("displayName").is_none());
        assert_eq!(d["name"], json!({"givenName": "Alice"}));
        assert_eq!(d["emails"].as_array().unwrap().len(), 1);
        assert!(d.get(ENTERPRISE_URN).is_none(), "an emptied extension goes");
        let d = doc(user(json!([{"op": "remove", "path": "emails"}])));
        assert!(d.get("emails").is_none());
        let d = doc(user(
            json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]),
        ));
        assert!(d["emails"][0].get("primary").is_none());
        // Absent single-valued attributes: removing them is a no-op.
        doc(user(json!([{"op": "remove", "path": "title"}])));
    }

    #[test]
    fn remove_by_value_needs_values_of_the_attribute_s_shape() {
        for value in [
            json!("a@x"),
            json!([7]),
            json!(["a@x"]),
            json!([null]),
            json!(null),
        ] {
            let e = err(user(
                json!([{"op": "remove", "path": "emails", "value": value.clone()}]),
            ));
            assert_eq!(e.scim_type, Some(ScimType::InvalidValue), "{value}: {e:?}");
        }
        // An object that matches nothing removes nothing.
        let d = doc(user(
            json!([{"op": "remove", "path": "emails", "value": {"type": "home"}}]),
        ));
        assert_eq!(d["emails"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn remove_errors() {
        for (ops, status, scim_type) in [
            (
                json!([{"op": "remove", "path": "userName"}]),
                400,
                ScimType::InvalidValue,
            ),
            (
                json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
                400,
                ScimType::NoTarget,
            ),
            (
                json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"]"}]),
                400,
                ScimType::NoTarget,
            ),
            (
                json!([{"op": "remove", "path": "id"}]),
                400,
                ScimType::Mutability,
            ),
            (
                json!([{"op": "remove", "path": "meta"}]),
                400,
                ScimType::Mutability,
            ),
            (
                json!([{"op": "remove", "path": "groups"}]),
                400,
                ScimType::Mutability,
            ),
            (
                json!([{"op": "remove", "path": "nosuch"}]),
                400,
                ScimType::InvalidPath,
            ),
            (
                json!([{"op": "remove", "path": "name.nosuch"}]),
                400,
                ScimType::InvalidPath,
            ),
            (
                json!([{"op": "remove", "path": "emails.value"}]),
                400,
                ScimType::InvalidPath,
            ),
            (
                json!([{"op": "remove", "path": "title[type eq \"x\"]"}]),
                400,
                ScimType::InvalidPath,
            ),
            (
                json!([{"op": "remove", "path": "urn:example:other:1.0:User:x"}]),
                400,
                ScimType::InvalidPath,
            ),
        ] {
            let e = err(user(ops.clone()));
            assert_eq!(
                (e.status, e.scim_type),
                (status, Some(scim_type)),
                "{ops}: {e:?}"
            );
        }
    }

    #[test]
    fn mutability_and_schema_errors() {
        for (ops, scim_type) in [
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                ScimType::Mutability,
            ),
            (
                json!([{"op": "add", "path": "meta", "value": {}}]),
                ScimType::Mutability,
            ),
            (
                json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
                ScimType::Mutability,
            ),
            (
                json!([{"op": "replace", "value": {"id": "someone-else"}}]),
                ScimType::Mutability,
            ),
            (
                json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.displayName", "value": "x"}]),
                ScimType::Mutability,
            ),
            (
                json!([{"op": "replace", "path": "active", "value": 3}]),
                ScimType::InvalidValue,
            ),
            (
                json!([{"op": "replace", "path": "userName", "value": ""}]),
                ScimType::InvalidValue,
            ),
            (
                json!([{"op": "add", "path": "emails", "value": [{"value": "x", "bogus": 1}]}]),
                ScimType::InvalidSyntax,
            ),
            (
                json!([{"op": "add", "value": "not an object"}]),
                ScimType::InvalidValue,
            ),
            (
                json!([{"op": "add", "value": {"nosuch": 1}}]),
                ScimType::InvalidPath,
            ),
        ] {
            let e = err(user(ops.clone()));
            assert_eq!(e.scim_type, Some(scim_type), "{ops}: {e:?}");
        }
    }

    #[test]
    fn a_failing_operation_fails_the_whole_request_naming_it() {
        let e = err(user(json!([
            {"op": "replace", "path": "title", "value": "CTO"},
            {"op": "remove", "path": "userName"}
        ])));
        assert!(e.detail.starts_with("operation 2:"), "{}", e.detail);
    }

    #[test]
    fn applying_nothing_new_returns_the_same_document() {
        let before = alice();
        let (out, _) =
            user(json!([{"op": "replace", "path": "displayName", "value": "Alice"}])).unwrap();
        let expected = resource::validate(REG.resource(ResourceKind::User), &before)
            .unwrap()
            .doc;
        assert_eq!(out.doc, expected);
    }

    // --- groups ---

    #[test]
    fn entra_member_add_and_both_remove_shapes() {
        // entra.md §3.11, §3.12.
        let m = members(group(
            json!([{"op":"Add","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]}]),
        ));
        assert_eq!(m, vec![MemberChange::Add(ids(&["f648f8d5ea4e4cd38e9c"]))]);
        let r =
            group(json!([{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u2"}]}]));
        assert!(quirks(&r).contains(&Quirk::RemoveByValue));
        assert_eq!(members(r), vec![MemberChange::Remove(vec!["u2".into()])]);
        let m = members(group(
            json!([{"op":"remove","path":"members[value eq \"7f4bc1a3\"]"}]),
        ));
        assert_eq!(m, vec![MemberChange::Remove(vec!["7f4bc1a3".into()])]);
    }

    #[test]
    fn okta_membership_delta_full_push_and_rename() {
        // okta.md §3, verbatim shapes.
        let m = members(group(json!([
            {"op":"remove","path":"members[value eq \"89bb\"]"},
            {"op":"add","path":"members","value":[{"value":"23a3","display":"test.user@okta.local"}]}
        ])));
        assert_eq!(
            m,
            vec![
                MemberChange::Remove(vec!["89bb".into()]),
                MemberChange::Add(ids(&["23a3"]))
            ]
        );
        let m = members(group(json!([{"op":"replace","path":"members","value":[]}])));
        assert_eq!(m, vec![MemberChange::Replace(vec![])]);
        let m = members(group(
            json!([{"op":"replace","path":"members","value":[{"value":"a"},{"value":"b"}]}]),
        ));
        assert_eq!(m, vec![MemberChange::Replace(ids(&["a", "b"]))]);
        // Rename with the group's own id inside the value; members untouched.
        let r = run_on(
            ResourceKind::Group,
            json!({"displayName": "Eng"}),
            json!([{"op":"replace","value":{"id":ID,"displayName":"New name"}}]),
        );
        assert!(quirks(&r).contains(&Quirk::PathlessId));
        let (out, _) = r.unwrap();
        assert_eq!(out.doc["displayName"], "New name");
        assert!(out.members.is_empty());
    }

    #[test]
    fn member_removals_by_other_filters_and_clear() {
        let m = members(group(
            json!([{"op":"remove","path":"members[value eq \"a\" or value eq \"b\"]"}]),
        ));
        assert_eq!(m, vec![MemberChange::Remove(vec!["a".into(), "b".into()])]);
        let m = members(group(
            json!([{"op":"remove","path":"members[type eq \"Group\"]"}]),
        ));
        assert!(matches!(&m[..], [MemberChange::RemoveWhere(_)]), "{m:?}");
        let m = members(group(json!([{"op":"remove","path":"members"}])));
        assert_eq!(m, vec![MemberChange::Clear]);
        let m = members(group(
            json!([{"op":"add","value":{"members":[{"value":"a","type":"User"}]}}]),
        ));
        assert_eq!(
            m,
            vec![MemberChange::Add(vec![MemberInput {
                value: "a".into(),
                kind: Some(ResourceKind::User)
            }])]
        );
    }

    #[test]
    fn member_errors() {
        for ops in [
            json!([{"op":"add","path":"members","value":[{"display":"no value"}]}]),
            json!([{"op":"add","path":"members","value":"u1"}]),
            json!([{"op":"add","path":"members[value eq \"a\"]","value":[{"value":"b"}]}]),
            json!([{"op":"replace","path":"members[value eq \"a\"].display","value":"x"}]),
            json!([{"op":"remove","path":"displayName"}]),
        ] {
            let e = err(group(ops.clone()));
            assert_eq!(e.status, 400, "{ops}");
        }
    }
}
