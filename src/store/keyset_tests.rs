//! Keyset pages (`ResourceStore::list_seek`, what RFC 9865 cursors stand on) against the
//! offset order of `ResourceStore::list`, on both backends: every sort (missing values, ties,
//! folded case, multi-valued, dateTimes, booleans, references), both directions, every page
//! size, with and without a filter; and a walk while resources are created and deleted.

use serde_json::json;

use super::filter_tests::{create, postgres, sqlite, Opened, World, A, ALL, BASE, T};
use crate::scim::filter;
use crate::scim::list::{Bound, Position, Seek, Sort, SortOrder};
use crate::scim::ResourceKind;
use crate::store::{Store, StoredResource};

fn sort(by: &str, desc: bool) -> Sort {
    Sort {
        by: by.into(),
        order: if desc {
            SortOrder::Descending
        } else {
            SortOrder::Ascending
        },
    }
}

fn seek(
    s: &dyn Store,
    kind: ResourceKind,
    f: Option<&filter::Filter>,
    sort: Option<&Sort>,
    from: Option<Bound>,
    backward: bool,
    limit: u64,
) -> Vec<(StoredResource, Position)> {
    s.list_seek(
        T,
        kind,
        f,
        sort,
        &Seek {
            from,
            backward,
            limit,
        },
        BASE,
    )
    .unwrap_or_else(|e| panic!("{sort:?}: {e}"))
}

fn after(p: &Position) -> Option<Bound> {
    Some(Bound {
        position: p.clone(),
        inclusive: false,
    })
}

/// Ids page by page forward from the start, then backward from the last one (inclusive).
fn walks(
    s: &dyn Store,
    kind: ResourceKind,
    f: Option<&filter::Filter>,
    sort: Option<&Sort>,
    size: u64,
) -> (Vec<String>, Vec<String>) {
    let mut forward = Vec::new();
    let mut from = None;
    let mut last = None;
    loop {
        let page = seek(s, kind, f, sort, from.clone(), false, size);
        assert!(page.len() as u64 <= size);
        let Some((_, p)) = page.last() else { break };
        from = after(p);
        last = Some(p.clone());
        forward.extend(page.iter().map(|(r, _)| r.id.clone()));
    }
    let mut backward = Vec::new();
    let mut from = last.map(|p| Bound {
        position: p,
        inclusive: true,
    });
    while let Some(bound) = from.take() {
        let page = seek(s, kind, f, sort, Some(bound), true, size);
        if let Some((_, p)) = page.last() {
            from = after(p);
        }
        backward.extend(page.iter().map(|(r, _)| r.id.clone()));
    }
    backward.reverse();
    (forward, backward)
}

fn every_sort_walks_in_the_offset_order_both_ways(open: fn() -> Option<Opened>) {
    let Some(w) = World::new(open) else {
        return;
    };
    let s: &dyn Store = &*w.s;
    // Ties and missing values in numbers: several share a familyName, a title, no title.
    for (i, family) in ["Jensen", "jensen", "Zola", "Jensen", ""]
        .iter()
        .enumerate()
    {
        let mut body = json!({"userName": format!("tie{i}"), "active": i % 2 == 0,
                              "title": if i < 2 { "Boss" } else { "" }});
        if !family.is_empty() {
            body["name"] = json!({"familyName": family});
        }
        create(s, ResourceKind::User, body);
    }
    let users = [
        "userName",
        "name.familyName",
        "title",
        "emails",
        "emails.type",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "meta.created",
        "meta.lastModified",
        "meta.version",
        "meta.resourceType",
        "meta.location",
        "active",
        "groups.display",
        "displayName",
        "externalId",
        "id",
        "nope",
    ];
    let groups = [
        "displayName",
        "externalId",
        "members.display",
        "members.value",
    ];
    let family = filter::parse(r#"name.familyName sw "j" or title pr"#).unwrap();
    for (kind, bys) in [
        (ResourceKind::User, &users[..]),
        (ResourceKind::Group, &groups[..]),
    ] {
        for by in bys {
            for desc in [false, true] {
                let sort = sort(by, desc);
                for f in [None, Some(&family)] {
                    if f.is_some() && kind == ResourceKind::Group {
                        continue;
                    }
                    let (_, rows) = s.list(T, kind, f, Some(&sort), ALL, BASE).unwrap();
                    let want: Vec<String> = rows.into_iter().map(|r| r.id).collect();
                    assert!(!want.is_empty());
                    for size in 1..=4 {
                        let (forward, backward) = walks(s, kind, f, Some(&sort), size);
                        assert_eq!(forward, want, "{kind:?} {by} desc={desc} size={size} {f:?}");
                        assert_eq!(backward, want, "back {kind:?} {by} desc={desc} size={size}");
                    }
                }
            }
        }
        // Unsorted: creation order.
        let (_, rows) = s.list(T, kind, None, None, ALL, BASE).unwrap();
        let want: Vec<String> = rows.into_iter().map(|r| r.id).collect();
        assert_eq!(walks(s, kind, None, None, 3), (want.clone(), want));
    }
    // Inclusive bounds take the resource at the position; exclusive ones skip it.
    let by = sort("name.familyName", true);
    let all = seek(s, ResourceKind::User, None, Some(&by), None, false, 100);
    let mid = &all[3].1;
    let at = |inclusive, backward| {
        let from = Some(Bound {
            position: mid.clone(),
            inclusive,
        });
        seek(s, ResourceKind::User, None, Some(&by), from, backward, 100)
            .into_iter()
            .map(|(r, _)| r.id)
            .collect::<Vec<_>>()
    };
    let ids: Vec<String> = all.iter().map(|(r, _)| r.id.clone()).collect();
    assert_eq!(at(true, false), ids[3..]);
    assert_eq!(at(false, false), ids[4..]);
    let mut before: Vec<String> = ids[..=3].to_vec();
    before.reverse();
    assert_eq!(at(true, true), before);
    assert_eq!(at(false, true), before[1..]);
    // A page of none.
    assert!(seek(s, ResourceKind::User, None, None, None, false, 0).is_empty());
}

/// While a walk goes on, resources are created and deleted (the one at the page's edge
/// too): every resource that stayed from start to end is seen exactly once, none twice.
fn a_walk_sees_every_survivor_once_while_others_come_and_go(open: fn() -> Option<Opened>) {
    let Some((_guard, store)) = open() else {
        return;
    };
    let s: &dyn Store = &*store;
    let mut next = 0;
    let mut add = |s: &dyn Store| {
        next += 1;
        // Names interleave with the first ones, so new resources land before and after
        // the walk's position.
        let name = format!("u{:03}", (next * 37) % 1000);
        create(
            s,
            ResourceKind::User,
            json!({"userName": name, "title": if next % 3 == 0 { "" } else { "t" }}),
        )
        .id
    };
    for (by, desc) in [
        (None, false),
        (Some("userName"), false),
        (Some("userName"), true),
        (Some("title"), false),
        (Some("meta.created"), true),
    ] {
        let sort = by.map(|b| sort(b, desc));
        let start: Vec<String> = (0..30).map(|_| add(s)).collect();
        let mut deleted = std::collections::HashSet::new();
        let mut seen: Vec<String> = Vec::new();
        let mut from = None;
        let mut round = 0;
        loop {
            let page = seek(s, ResourceKind::User, None, sort.as_ref(), from, false, 4);
            let Some((edge, p)) = page.last() else { break };
            from = after(p);
            seen.extend(page.iter().map(|(r, _)| r.id.clone()));
            // For the first pages: the resource at the edge goes, one from the start that may
            // not have been seen goes, two new ones come (later the walk must end: in
            // creation order every new one lands ahead of it).
            round += 1;
            assert!(round < 100, "the walk does not end ({by:?} desc={desc})");
            if round > 6 {
                continue;
            }
            let edge = edge.id.clone();
            for id in [Some(edge), start.get(round * 5 + 3).cloned()]
                .into_iter()
                .flatten()
            {
                if deleted.insert(id.clone()) {
                    s.delete(T, ResourceKind::User, &id, &A, &mut |_| Ok(()))
                        .unwrap();
                }
            }
            add(s);
            add(s);
        }
        let mut once = std::collections::HashSet::new();
        for id in &seen {
            assert!(once.insert(id), "{id} seen twice ({by:?} desc={desc})");
        }
        for id in &start {
            if !deleted.contains(id) {
                assert!(once.contains(id), "{id} stayed but was not seen ({by:?})");
            }
        }
        // Clean up for the next sort.
        let (_, rest) = s
            .list(T, ResourceKind::User, None, None, ALL, BASE)
            .unwrap();
        for r in rest {
            s.delete(T, ResourceKind::User, &r.id, &A, &mut |_| Ok(()))
                .unwrap();
        }
    }
}

/// The cursor key: stored once, the same for every later caller whatever it offers.
fn the_cursor_key_is_kept_in_the_database(open: fn() -> Option<Opened>) {
    let Some((_guard, store)) = open() else {
        return;
    };
    let first = store.cursor_key(&[7; 32]).unwrap();
    assert_eq!(first, [7; 32]);
    assert_eq!(store.cursor_key(&[9; 32]).unwrap(), first);
}

on_both_backends!(
    every_sort_walks_in_the_offset_order_both_ways,
    a_walk_sees_every_survivor_once_while_others_come_and_go,
    the_cursor_key_is_kept_in_the_database,
);
