//! Group membership as rows: a change costs its own size, not the group's.

use std::collections::{HashMap, HashSet};

use super::*;

/// Looks up prospective members, all in one statement: each must exist in the same tenant,
/// match the `type` the client gave, and not be the group itself (the first that does not,
/// in the order given, is the error). Returns each one's pk and whether it is a Group, in
/// the order given.
pub(super) fn member_pks(
    db: &mut Db,
    tenant: &str,
    group_id: &str,
    members: &[MemberInput],
) -> Result<Vec<(i64, bool)>, StoreError> {
    let ids: Vec<&str> = members.iter().map(|m| m.value.as_str()).collect();
    // KEY SHARE: a concurrent delete of a member (FOR UPDATE) waits until this group's
    // change commits and then takes the new membership with it; a delete that came first
    // leaves no row here, and the member is refused as unknown, as on SQLite.
    let found: HashMap<String, (i64, String)> = db
        .query(
            "SELECT id, pk, kind FROM resources WHERE tenant = $1 AND id = ANY($2) FOR KEY SHARE",
            &[&tenant, &ids],
        )?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    members
        .iter()
        .map(|m| {
            if m.value == group_id {
                return Err(StoreError::InvalidReference(
                    "a group cannot be a member of itself".into(),
                ));
            }
            let Some((pk, kind)) = found.get(&m.value) else {
                return Err(StoreError::InvalidReference(format!(
                    "member \"{}\" is not an existing User or Group",
                    m.value
                )));
            };
            if let Some(expected) = m.kind {
                if parse_kind(kind)? != expected {
                    return Err(StoreError::InvalidReference(format!(
                        "member \"{}\" is a {kind}, not a {}",
                        m.value,
                        expected.name()
                    )));
                }
            }
            Ok((*pk, kind == "Group"))
        })
        .collect()
}

/// Whether `candidate` already contains `group_pk`, directly or through nested groups, so
/// that adding it to the group would make a cycle. Walks up from the group (its ancestors
/// are few), never down through a big member group.
pub(super) fn contains_transitively(
    db: &mut Db,
    candidate: i64,
    group_pk: i64,
) -> Result<bool, StoreError> {
    Ok(db
        .query_one(
            "WITH RECURSIVE up(pk) AS (
                SELECT group_pk FROM memberships WHERE member_pk = $1
                UNION
                SELECT m.group_pk FROM memberships m JOIN up ON m.member_pk = up.pk
             )
             SELECT EXISTS (SELECT 1 FROM up WHERE pk = $2)",
            &[&group_pk, &candidate],
        )?
        .get(0))
}

/// Adds members; returns how many were not members before (and notes them in `delta`, in
/// the order given). A statement for the lookup and one for the inserts, whatever their
/// number (a 100-member PATCH was 200 round trips).
pub(super) fn add_members(
    db: &mut Db,
    tenant: &str,
    group_pk: i64,
    group_id: &str,
    members: &[MemberInput],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    if members.is_empty() {
        return Ok(0);
    }
    let found = member_pks(db, tenant, group_id, members)?;
    let mut nesting_locked = false;
    for (m, &(pk, is_group)) in members.iter().zip(&found) {
        if !is_group {
            continue;
        }
        // Groups may contain groups, but not in a cycle: "members of members" must end.
        // Two transactions nesting groups at once (G1 into G2 here, G2 into G1 there) would
        // each pass the check before the other commits: one nesting change per tenant at a
        // time, the lock held to commit, so the later one sees the earlier one's row.
        if !nesting_locked {
            db.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('scimlite group nesting ' || $1, 0))",
                &[&tenant],
            )?;
            nesting_locked = true;
        }
        if contains_transitively(db, pk, group_pk)? {
            return Err(StoreError::InvalidReference(format!(
                "group \"{}\" already contains this group; adding it would make a cycle",
                m.value
            )));
        }
    }
    let pks: Vec<i64> = found.iter().map(|&(pk, _)| pk).collect();
    let mut inserted: HashSet<i64> = db
        .query(
            "INSERT INTO memberships (group_pk, member_pk) SELECT $1, unnest($2::bigint[])
             ON CONFLICT DO NOTHING RETURNING member_pk",
            &[&group_pk, &pks],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut added = 0;
    for (m, (pk, _)) in members.iter().zip(&found) {
        // A member given twice was inserted once.
        if inserted.remove(pk) {
            delta.added.push(m.value.clone());
            added += 1;
        }
    }
    Ok(added)
}

/// Removes members by id; returns how many were removed (and notes them in `delta`, in the
/// order given). One statement, whatever their number.
pub(super) fn remove_members(
    db: &mut Db,
    tenant: &str,
    group_pk: i64,
    ids: &[String],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut gone: HashSet<String> = db
        .query(
            "DELETE FROM memberships m USING resources r
             WHERE m.group_pk = $1 AND m.member_pk = r.pk AND r.tenant = $2 AND r.id = ANY($3)
             RETURNING r.id",
            &[&group_pk, &tenant, &ids],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut removed = 0;
    for id in ids {
        if gone.remove(id) {
            delta.removed.push(id.clone());
            removed += 1;
        }
    }
    Ok(removed)
}

/// Replaces a group's member rows. Every member must exist in the same tenant; a group may
/// contain groups but not itself.
pub(super) fn set_members(
    db: &mut Db,
    tenant: &str,
    group_pk: i64,
    group_id: &str,
    members: &[MemberInput],
    delta: &mut MemberDelta,
) -> Result<usize, StoreError> {
    let current = member_ids(db, group_pk)?;
    let wanted: std::collections::HashSet<&str> =
        members.iter().map(|m| m.value.as_str()).collect();
    let gone: Vec<String> = current
        .iter()
        .filter(|id| !wanted.contains(id.as_str()))
        .cloned()
        .collect();
    let removed = remove_members(db, tenant, group_pk, &gone, delta)?;
    let added = add_members(db, tenant, group_pk, group_id, members, delta)?;
    Ok(removed + added)
}

/// Applies membership changes in order; returns how many rows changed.
pub(super) fn apply_member_changes(
    db: &mut Db,
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
                add_members(db, tenant, group_pk, group_id, members, delta)?
            }
            MemberChange::Remove(ids) => remove_members(db, tenant, group_pk, ids, delta)?,
            MemberChange::Clear => {
                delta.removed.extend(member_ids(db, group_pk)?);
                db.execute("DELETE FROM memberships WHERE group_pk = $1", &[&group_pk])? as usize
            }
            MemberChange::Replace(members) => {
                set_members(db, tenant, group_pk, group_id, members, delta)?
            }
            MemberChange::RemoveWhere(filter) => {
                // The filter is compiled to SQL over the group's memberships.
                let mut q = query::member_selection(registry.resource(ResourceKind::Group), filter)
                    .ok_or_else(|| StoreError::Corrupt("no members attribute".into()))?;
                q.args[0] = query::Arg::Int(group_pk);
                let doomed: Vec<String> = db
                    .query(&q.where_sql, &query::params(&q.args))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                remove_members(db, tenant, group_pk, &doomed, delta)?
            }
        };
    }
    Ok(changed)
}

pub(super) fn member_ids(db: &mut Db, group_pk: i64) -> Result<Vec<String>, StoreError> {
    Ok(db
        .query(
            "SELECT r.id FROM memberships m JOIN resources r ON r.pk = m.member_pk
             WHERE m.group_pk = $1 ORDER BY r.id",
            &[&group_pk],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_support::*;

    /// G1 into G2 and G2 into G1 at the same moment, in two transactions that both get past
    /// their own group's row lock: exactly one lands, the other is refused as a cycle.
    #[test]
    fn groups_nested_into_each_other_at_once_never_make_a_cycle() {
        use crate::store::{PasswordUpdate, ResourceUpdate, StoredResource, UpdateOp};
        let Some((_d, s)) = store() else {
            return;
        };
        let group = |name: &str| {
            let g = validate(
                REG.resource(ResourceKind::Group),
                json!({ "displayName": name }),
            )
            .unwrap();
            s.create(T, ResourceKind::Group, &g, None, &A).unwrap()
        };
        // The window is narrow: many rounds, so a missing lock shows.
        for round in 0..25 {
            let (g1, g2) = (group(&format!("a{round}")), group(&format!("b{round}")));
            let both_inside = std::sync::Barrier::new(2);
            let results: Vec<Result<_, StoreError>> = std::thread::scope(|scope| {
                let runs: Vec<_> = [(&g1, &g2), (&g2, &g1)]
                    .into_iter()
                    .map(|(outer, inner)| {
                        let (s, both_inside) = (&s, &both_inside);
                        scope.spawn(move || {
                            let mut f = |cur: &StoredResource| {
                                // Both transactions hold their group's row before either adds.
                                both_inside.wait();
                                Ok(ResourceUpdate {
                                    doc: cur.doc.clone(),
                                    password: PasswordUpdate::Keep,
                                    members: vec![MemberChange::Add(vec![MemberInput {
                                        value: inner.id.clone(),
                                        kind: Some(ResourceKind::Group),
                                    }])],
                                })
                            };
                            s.update(
                                T,
                                ResourceKind::Group,
                                &outer.id,
                                &A,
                                UpdateOp::Patch,
                                &mut f,
                            )
                        })
                    })
                    .collect();
                runs.into_iter().map(|r| r.join().unwrap()).collect()
            });
            let refused = results
                .iter()
                .filter(
                    |r| matches!(r, Err(StoreError::InvalidReference(m)) if m.contains("cycle")),
                )
                .count();
            assert_eq!(refused, 1, "{results:?}");
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
            let nested = s.references(T, ResourceKind::Group, &g1.id).unwrap().len()
                + s.references(T, ResourceKind::Group, &g2.id).unwrap().len();
            // One group holds the other, and no more.
            assert_eq!(nested, 1);
        }
    }

    #[test]
    fn deleting_a_user_removes_it_from_groups_and_members_must_exist() {
        let Some((_d, s)) = store() else {
            return;
        };
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

    /// Members added or removed many at once (one statement each way): the audit entry
    /// names them in the order given, each once, with their names; a member given twice
    /// counts once; of several wrong members the first in the order given is the error, and
    /// a refused change stores nothing.
    #[test]
    fn many_members_at_once_keep_the_order_given_and_the_first_wrong_one_is_the_error() {
        use crate::scim::resource::MemberInput;
        use crate::store::ResourceUpdate;
        let Some((_d, s)) = store() else {
            return;
        };
        let ids = user_ids(&s, "m", 6);
        let g = group_of(&s, "g", &[], &A);
        let member = |value: &str, kind: Option<ResourceKind>| MemberInput {
            value: value.into(),
            kind,
        };
        let patch = |changes: Vec<MemberChange>| {
            let mut f = |cur: &StoredResource| {
                Ok(ResourceUpdate {
                    doc: cur.doc.clone(),
                    password: PasswordUpdate::Keep,
                    members: changes.clone(),
                })
            };
            s.update(T, ResourceKind::Group, &g.id, &A, UpdateOp::Patch, &mut f)
        };
        let members = || {
            let mut m: Vec<String> = s
                .references(T, ResourceKind::Group, &g.id)
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            m.sort();
            m
        };
        let last_change = || entries_about(&s, &g.id).pop().unwrap().changes;
        let named = |i: usize| json!({"value": ids[i], "type": "User", "name": format!("m{i}")});

        let (_, changed) = patch(vec![MemberChange::Add(vec![
            member(&ids[2], None),
            member(&ids[0], Some(ResourceKind::User)),
            member(&ids[2], None),
            member(&ids[1], None),
        ])])
        .unwrap();
        assert!(changed);
        assert_eq!(
            last_change()["members"],
            json!({"added": [named(2), named(0), named(1)]})
        );
        // Each added member finds the entry.
        for i in [0, 1, 2] {
            let ops: Vec<String> = entries_about(&s, &format!("m{i}"))
                .into_iter()
                .map(|e| e.operation)
                .collect();
            assert_eq!(ops, ["create", "patch"], "m{i}");
        }
        let before = members();
        for (wrong, error) in [
            (
                vec![
                    member(&ids[3], None),
                    member("nope", None),
                    member(&g.id, None),
                ],
                "member \"nope\" is not an existing User or Group",
            ),
            (
                vec![
                    member(&ids[3], None),
                    member(&g.id, None),
                    member("nope", None),
                ],
                "a group cannot be a member of itself",
            ),
            (
                vec![member(&ids[4], Some(ResourceKind::Group))],
                "is a User, not a Group",
            ),
        ] {
            match patch(vec![MemberChange::Add(wrong)]) {
                Err(StoreError::InvalidReference(m)) => assert!(m.contains(error), "{m}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(members(), before);
        }
        let (_, changed) = patch(vec![MemberChange::Remove(vec![
            ids[0].clone(),
            ids[5].clone(),
            ids[0].clone(),
        ])])
        .unwrap();
        assert!(changed);
        assert_eq!(last_change()["members"], json!({"removed": [named(0)]}));
        let mut left = vec![ids[1].clone(), ids[2].clone()];
        left.sort();
        assert_eq!(members(), left);
    }

    #[test]
    fn membership_changes_are_deltas_and_move_the_version_only_when_rows_change() {
        use crate::scim::resource::MemberInput;
        let Some((_d, s)) = store() else {
            return;
        };
        let ids = user_ids(&s, "m", 4);
        let g = group_of(&s, "g", &[], &A);
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

    #[test]
    fn member_filters_in_sql_agree_with_the_evaluator() {
        let Some((_d, s)) = store() else {
            return;
        };
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
                .read(|db| {
                    Ok(db
                        .query_one("SELECT pk FROM resources WHERE id = $1", &[&g.id])?
                        .get(0))
                })
                .unwrap();
            q.args[0] = query::Arg::Int(pk);
            let mut got: Vec<String> = s
                .read(|db| {
                    Ok(db
                        .query(&q.where_sql, &query::params(&q.args))?
                        .iter()
                        .map(|r| r.get(0))
                        .collect())
                })
                .unwrap();
            got.sort();
            assert_eq!(got, want, "{f}");
        }
    }
}
