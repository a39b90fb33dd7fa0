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

mod apply;
mod parse;
#[cfg(test)]
mod tests;
mod values;

pub use apply::apply;
pub use parse::parse;

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

pub(super) fn invalid_path(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidPath, detail)
}

pub(super) fn no_target(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::NoTarget, detail)
}

pub(super) fn mutability(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::Mutability, detail)
}

/// Looks up a member of a JSON object by name, case-insensitively.
pub(super) fn get_ci<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}
