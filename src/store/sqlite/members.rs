//! Group membership as rows: a change costs its own size, not the group's.

use super::*;

/// Looks up a prospective member: it must exist in the same tenant, match the `type` the
/// client gave, and not be the group itself. Returns its pk and whether it is a Group.
pub(super) fn member_pk(
    tx: &Connection,
    tenant: &str,
    group_id: &str,
    m: &MemberInput,
) -> Result<(i64, bool), StoreError> {
    if m.value == group_id {
        return Err(StoreError::InvalidReference(
            "a group cannot be a member of itself".into(),
        ));
    }
    let mut find =
        tx.prepare_cached("SELECT pk, kind FROM resources WHERE tenant = ?1 AND id = ?2")?;
    let found: Option<(i64, String)> = find
        .query_row(params![tenant, m.value], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((pk, kind)) = found else {
        return Err(StoreError::InvalidReference(format!(
            "member \"{}\" is not an existing User or Group",
            m.value
        )));
    };
    if let Some(expected) = m.kind {
        if parse_kind(&kind)? != expected {
            return Err(StoreError::InvalidReference(format!(
                "member \"{}\" is a {kind}, not a {}",
                m.value,
                expected.name()
            )));
        }
    }
    Ok((pk, kind == "Group"))
}

/// Whether `candidate` already contains `group_pk`, directly or through nested groups, so
/// that adding it to the group would make a cycle. Walks up from the group (its ancestors
/// are few), never down through a big member group.
pub(super) fn contains_transitively(
    tx: &Connection,
    candidate: i64,
    group_pk: i64,
) -> Result<bool, StoreError> {
    let mut stmt = tx.prepare_cached(
        "WITH RECURSIVE up(pk) AS (
            SELECT group_pk FROM memberships WHERE member_pk = ?1
            UNION
            SELECT m.group_pk FROM memberships m JOIN up ON m.member_pk = up.pk
         )
         SELECT EXISTS (SELECT 1 FROM up WHERE pk = ?2)",
    )?;
    Ok(stmt.query_row(params![group_pk, candidate], |r| r.get(0))?)
}

/// Adds members; returns how many were not members before (and notes them in `delta`).
pub(super) fn add_members(
    tx: &Connection,
    tenant: &str,
    group_pk: i64,
    group_id: &str,
    members: &[MemberInput],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO memberships (group_pk, member_pk) VALUES (?1, ?2)",
    )?;
    let mut added = 0;
    for m in members {
        let (pk, is_group) = member_pk(tx, tenant, group_id, m)?;
        // Groups may contain groups, but not in a cycle: "members of members" must end.
        if is_group && contains_transitively(tx, pk, group_pk)? {
            return Err(StoreError::InvalidReference(format!(
                "group \"{}\" already contains this group; adding it would make a cycle",
                m.value
            )));
        }
        let n = insert.execute(params![group_pk, pk])?;
        if n > 0 {
            delta.added.push(m.value.clone());
        }
        added += n;
    }
    Ok(added)
}

/// Removes members by id; returns how many were removed (and notes them in `delta`).
pub(super) fn remove_members(
    tx: &Connection,
    tenant: &str,
    group_pk: i64,
    ids: &[String],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    let mut delete = tx.prepare_cached(
        "DELETE FROM memberships WHERE group_pk = ?1
         AND member_pk = (SELECT pk FROM resources WHERE tenant = ?2 AND id = ?3)",
    )?;
    let mut removed = 0;
    for id in ids {
        let n = delete.execute(params![group_pk, tenant, id])?;
        if n > 0 {
            delta.removed.push(id.clone());
        }
        removed += n;
    }
    Ok(removed)
}

/// Replaces a group's member rows. Every member must exist in the same tenant; a group may
/// contain groups but not itself.
pub(super) fn set_members(
    tx: &Connection,
    tenant: &str,
    group_pk: i64,
    group_id: &str,
    members: &[MemberInput],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    let current = member_ids(tx, group_pk)?;
    let wanted: std::collections::HashSet<&str> =
        members.iter().map(|m| m.value.as_str()).collect();
    let gone: Vec<String> = current
        .iter()
        .filter(|id| !wanted.contains(id.as_str()))
        .cloned()
        .collect();
    let removed = remove_members(tx, tenant, group_pk, &gone, delta)?;
    let added = add_members(tx, tenant, group_pk, group_id, members, delta)?;
    Ok(removed + added)
}

/// Applies membership changes in order; returns how many rows changed.
pub(super) fn apply_member_changes(
    tx: &Connection,
    registry: &Registry,
    tenant: &str,
    group_pk: i64,
    group_id: &str,
    changes: &[MemberChange],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    let mut changed = 0;
    for change in changes {
        changed += match change {
            MemberChange::Add(members) => {
                add_members(tx, tenant, group_pk, group_id, members, delta)?
            }
            MemberChange::Remove(ids) => remove_members(tx, tenant, group_pk, ids, delta)?,
            MemberChange::Clear => {
                delta.removed.extend(member_ids(tx, group_pk)?);
                tx.execute("DELETE FROM memberships WHERE group_pk = ?1", [group_pk])?
            }
            MemberChange::Replace(members) => {
                set_members(tx, tenant, group_pk, group_id, members, delta)?
            }
            MemberChange::RemoveWhere(filter) => {
                // Rare (the IdPs select members by value, which becomes `Remove`): the filter
                // is compiled to SQL over the group's memberships.
                let mut q = query::member_selection(registry.resource(ResourceKind::Group), filter)
                    .ok_or_else(|| StoreError::Corrupt("no members attribute".into()))?;
                q.args[0] = rusqlite::types::Value::Integer(group_pk);
                let mut stmt = tx.prepare(&q.where_sql)?;
                let doomed: Vec<String> = stmt
                    .query_map(params_from_iter(q.args.iter()), |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                remove_members(tx, tenant, group_pk, &doomed, delta)?
            }
        };
    }
    Ok(changed)
}

pub(super) fn member_ids(tx: &Connection, group_pk: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT r.id FROM memberships m JOIN resources r ON r.pk = m.member_pk WHERE m.group_pk = ?1 ORDER BY r.id",
    )?;
    let rows = stmt.query_map([group_pk], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<String>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::test_support::*;

    #[test]
    fn deleting_a_user_removes_it_from_groups_and_members_must_exist() {
        let (_d, s) = store();
        let u = s
            .create(T, ResourceKind::User, &user("u1"), None, &A)
            .unwrap();
        let g = validate(
            REG.resource(ResourceKind::Group),
            json!({"displayName":"g","members":[{"value": u.id}]}),
        )
        .unwrap();
        let g = s.create(T, ResourceKind::Group, &g, None, &A).unwrap();
        let refs = s.references(T, ResourceKind::Group, &g.id).unwrap();
        assert_eq!(refs[0].display.as_deref(), Some("D u1"));
        assert_eq!(
            s.references(T, ResourceKind::User, &u.id).unwrap()[0].id,
            g.id
        );
        s.delete(T, ResourceKind::User, &u.id, &A, &mut |_| Ok(()))
            .unwrap();
        assert!(s
            .references(T, ResourceKind::Group, &g.id)
            .unwrap()
            .is_empty());
        assert!(matches!(
            s.delete(T, ResourceKind::User, &u.id, &A, &mut |_| Ok(())),
            Err(StoreError::NotFound)
        ));
        let bad = validate(
            REG.resource(ResourceKind::Group),
            json!({"displayName":"h","members":[{"value":"nope"}]}),
        )
        .unwrap();
        assert!(matches!(
            s.create(T, ResourceKind::Group, &bad, None, &A),
            Err(StoreError::InvalidReference(_))
        ));
        // The failed create left nothing behind.
        let (n, _) = s
            .list(T, ResourceKind::Group, None, None, PAGE, BASE)
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn membership_changes_are_deltas_and_move_the_version_only_when_rows_change() {
        use crate::scim::resource::MemberInput;
        let (_d, s) = store();
        let ids: Vec<String> = (0..4)
            .map(|i| {
                s.create(T, ResourceKind::User, &user(&format!("m{i}")), None, &A)
                    .unwrap()
                    .id
            })
            .collect();
        let g = validate(
            REG.resource(ResourceKind::Group),
            json!({"displayName": "g"}),
        )
        .unwrap();
        let g = s.create(T, ResourceKind::Group, &g, None, &A).unwrap();
        let input = |v: &[usize]| -> Vec<MemberInput> {
            v.iter()
                .map(|&i| MemberInput {
                    value: ids[i].clone(),
                    kind: None,
                })
                .collect()
        };
        let run = |changes: Vec<MemberChange>| {
            let mut f = |cur: &StoredResource| {
                Ok(crate::store::ResourceUpdate {
                    doc: cur.doc.clone(),
                    password: PasswordUpdate::Keep,
                    members: changes.clone(),
                })
            };
            let (r, changed) = s
                .update(T, ResourceKind::Group, &g.id, &A, UpdateOp::Patch, &mut f)
                .unwrap();
            let mut members: Vec<String> = s
                .references(T, ResourceKind::Group, &g.id)
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            members.sort();
            (r.meta.version, changed, members)
        };
        let sorted = |v: &[usize]| {
            let mut out: Vec<String> = v.iter().map(|&i| ids[i].clone()).collect();
            out.sort();
            out
        };
        assert_eq!(
            run(vec![MemberChange::Add(input(&[0, 1]))]),
            (2, true, sorted(&[0, 1]))
        );
        // Re-adding and removing a non-member change nothing.
        assert_eq!(
            run(vec![
                MemberChange::Add(input(&[0])),
                MemberChange::Remove(vec![ids[3].clone()])
            ]),
            (2, false, sorted(&[0, 1]))
        );
        assert_eq!(
            run(vec![MemberChange::Replace(input(&[1, 2]))]),
            (3, true, sorted(&[1, 2]))
        );
        assert_eq!(
            run(vec![MemberChange::Replace(input(&[2, 1]))]),
            (3, false, sorted(&[1, 2]))
        );
        let by_name = crate::scim::filter::parse("display eq \"D m2\"").unwrap();
        assert_eq!(
            run(vec![MemberChange::RemoveWhere(by_name)]),
            (4, true, sorted(&[1]))
        );
        assert_eq!(run(vec![MemberChange::Clear]), (5, true, vec![]));
        // A refused update stores nothing.
        let mut refuse =
            |_: &StoredResource| Err(crate::scim::ScimError::invalid_value("no").into());
        assert!(matches!(
            s.update(
                T,
                ResourceKind::Group,
                &g.id,
                &A,
                UpdateOp::Patch,
                &mut refuse
            ),
            Err(StoreError::Rejected(_))
        ));
        let mut bad = |cur: &StoredResource| {
            Ok(crate::store::ResourceUpdate {
                doc: cur.doc.clone(),
                password: PasswordUpdate::Keep,
                members: vec![
                    MemberChange::Add(input(&[3])),
                    MemberChange::Add(vec![MemberInput {
                        value: "nope".into(),
                        kind: None,
                    }]),
                ],
            })
        };
        assert!(matches!(
            s.update(T, ResourceKind::Group, &g.id, &A, UpdateOp::Patch, &mut bad),
            Err(StoreError::InvalidReference(_))
        ));
        assert!(s
            .references(T, ResourceKind::Group, &g.id)
            .unwrap()
            .is_empty());
        assert_eq!(
            s.get(T, ResourceKind::Group, &g.id)
                .unwrap()
                .unwrap()
                .meta
                .version,
            5
        );
    }

    /// The SQL a member filter compiles to selects exactly the members the evaluator selects
    /// on each member as the API renders it.
    #[test]
    fn member_filters_in_sql_agree_with_the_evaluator() {
        let (_d, s) = store();
        let u1 = s
            .create(T, ResourceKind::User, &user("Émile"), None, &A)
            .unwrap();
        let u2 = s
            .create(T, ResourceKind::User, &user("zoe"), None, &A)
            .unwrap();
        let sub = validate(
            REG.resource(ResourceKind::Group),
            json!({"displayName": "Sub"}),
        )
        .unwrap();
        let sub = s.create(T, ResourceKind::Group, &sub, None, &A).unwrap();
        let g = validate(
            REG.resource(ResourceKind::Group),
            json!({"displayName": "All", "members": [
                {"value": u1.id}, {"value": u2.id}, {"value": sub.id}]}),
        )
        .unwrap();
        let g = s.create(T, ResourceKind::Group, &g, None, &A).unwrap();
        let refs = s.references(T, ResourceKind::Group, &g.id).unwrap();
        let groups = REG.resource(ResourceKind::Group);
        let members = groups.top_level("members").unwrap();
        for f in [
            r#"type eq "Group""#,
            r#"type eq "user""#,
            r#"display eq "d émile""#,
            r#"display co "ÉMILE""#,
            r#"not (display pr)"#,
            &format!(r#"value eq "{}""#, u2.id),
            &format!(r#"value eq "{}" or type eq "Group""#, u1.id),
            r#"$ref sw "/Groups/""#,
            r#"nope pr"#,
        ] {
            let filter = crate::scim::filter::parse(f).unwrap();
            let mut want: Vec<String> = refs
                .iter()
                .filter(|r| {
                    let mut element = json!({"value": r.id, "type": r.kind.name(),
                        "$ref": format!("/{}/{}", r.kind.endpoint(), r.id)});
                    if let Some(d) = &r.display {
                        element["display"] = json!(d);
                    }
                    crate::scim::filter::matches_value(&filter, members, &element)
                })
                .map(|r| r.id.clone())
                .collect();
            want.sort();
            let mut q = query::member_selection(groups, &filter).unwrap();
            let pk: i64 = s
                .read(|c| {
                    Ok(
                        c.query_row("SELECT pk FROM resources WHERE id = ?1", [&g.id], |r| {
                            r.get(0)
                        })?,
                    )
                })
                .unwrap();
            q.args[0] = rusqlite::types::Value::Integer(pk);
            let mut got: Vec<String> = s
                .read(|c| {
                    let mut stmt = c.prepare(&q.where_sql)?;
                    let rows = stmt
                        .query_map(params_from_iter(q.args.iter()), |r| r.get(0))?
                        .collect::<Result<Vec<String>, _>>()?;
                    Ok(rows)
                })
                .unwrap();
            got.sort();
            assert_eq!(got, want, "{f}");
        }
    }
}
