//! Applying operations to a copy of the document: paths resolved against the schema, the
//! dialect steps, member changes as row deltas.

use super::parse::at_operation;
use super::values::*;
use super::*;

/// A path resolved against the schema: an attribute, maybe one of its sub-attributes, maybe a
/// value filter.
pub(super) struct Resolved<'r> {
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
pub(super) enum PatchTarget<'r> {
    Attribute(Resolved<'r>),
    Extension(&'r Extension),
}

pub(super) fn path_error(e: PathError) -> ScimError {
    invalid_path(e.to_string())
}

pub(super) fn resolve<'r>(
    rs: &'r ResourceSchema,
    path: &PatchPath,
) -> Result<PatchTarget<'r>, ScimError> {
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
pub(super) struct Work<'a> {
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
    let mut valid = resource::validate(rs, Value::Object(work.doc))?;
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

/// The attribute a resolved path names, for messages.
pub(super) fn target_name(target: &Resolved) -> String {
    match target.sub {
        Some(sub) => format!("{}.{}", target.def.name, sub.name),
        None => target.def.name.to_string(),
    }
}
